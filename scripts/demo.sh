#!/usr/bin/env bash
# make demo: the whole system on the built-in test stream, on this machine.
#
#   origin      rtsp-mediator --test-source test      rtsp://127.0.0.1:8554/test
#   ocm-server  trees on 127.0.0.1:7070, API on http://127.0.0.1:7080 (origin serves 2 relays)
#   viewer N    ocm-relay + rtsp-mediator --resolver ocm  on 127.0.0.1:855N (N = 5..9)
#
# Each viewer host gets a built-in player; the server builds the relay tree
# by measurement. Then one relay with children is killed with SIGKILL and
# the tree is repaired while the players keep playing. Watch any viewer
# with ffplay or GStreamer at the printed URLs. Runs until Ctrl-C when
# started from a terminal, else for DEMO_SECONDS (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
LOG=${DEMO_LOG:-.demo}
mkdir -p "$LOG"
rm -f "$LOG"/*.out "$LOG"/*.err

pids=()
cleanup() {
	trap - EXIT INT TERM
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "demo: stopped; logs in $LOG/"
}
trap cleanup EXIT INT TERM

# start NAME ARGS...: runs a tool in the background, waits for its ready line.
start() {
	local name=$1; shift
	"$@" >"$LOG/$name.out" 2>"$LOG/$name.err" &
	pids+=($!)
	eval "pid_${name//-/_}=$!"
	for _ in $(seq 100); do
		if grep -q '"event":"ready"' "$LOG/$name.out" 2>/dev/null; then return 0; fi
		if ! kill -0 "${pids[-1]}" 2>/dev/null; then
			echo "demo: $name failed to start:" >&2; cat "$LOG/$name.err" >&2; exit 1
		fi
		sleep 0.1
	done
	echo "demo: $name did not get ready" >&2; exit 1
}

start origin "$BIN/rtsp-mediator" --listen 127.0.0.1:8554 --rtp off --rtcp off --test-source test --stats-interval 5s
start server "$BIN/ocm-server" --listen 127.0.0.1:7070 --http 127.0.0.1:7080 --origin-capacity 2 --heartbeat 500ms --report-interval 2s

for n in 5 6 7 8 9; do
	start "relay$n" "$BIN/ocm-relay" --server 127.0.0.1:7070 --control "127.0.0.1:717$n" --probe "127.0.0.1:727$n" \
		--node-id "viewer$n" --capacity 2
	start "viewer$n" "$BIN/rtsp-mediator" --listen "127.0.0.1:855$n" --rtp off --rtcp off \
		--resolver ocm --control "127.0.0.1:717$n" --stats-interval 5s
	"$BIN/rtsp-mediator" read "rtsp://127.0.0.1:855$n/test?127.0.0.1:8554" --interval 1s >"$LOG/player$n.out" 2>&1 &
	pids+=($!)
	sleep 0.5
done
sleep 1

echo "demo: five viewer hosts joined; the tree ocm-server built (ocm-ctl tree):"
"$BIN/ocm-ctl" --server 127.0.0.1:7080 tree
cat <<MSG

demo: watch through any viewer host, e.g.
    ffplay 'rtsp://127.0.0.1:8559/test?127.0.0.1:8554'
    gst-launch-1.0 rtspsrc location='rtsp://127.0.0.1:8559/test?127.0.0.1:8554' ! decodebin ! autovideosink
MSG

# Kill a relay that has children, the way a viewer's host dies.
victim=$("$BIN/ocm-ctl" --server 127.0.0.1:7080 -o json tree | grep -o '"node":"viewer[0-9]","parent":"[a-z0-9]*","level":1,"children":\["viewer' | head -1 | grep -o 'viewer[0-9]' | head -1 || true)
if [ -n "$victim" ]; then
	n=${victim#viewer}
	echo
	echo "demo: kill -9 $victim (relay and mediator); its children are repaired:"
	eval "victims=\"\$pid_relay$n \$pid_viewer$n\""
	# shellcheck disable=SC2086
	{ kill -9 $victims; wait $victims; } 2>/dev/null || true
	sleep 2
	"$BIN/ocm-ctl" --server 127.0.0.1:7080 tree
	echo
	echo "demo: players on the other hosts kept their sessions (packets, lost):"
	for m in 5 6 7 8 9; do
		[ "$m" = "$n" ] && continue
		printf '  viewer%s: %s\n' "$m" "$(tail -n 1 "$LOG/player$m.out" | grep -o '"lost":[0-9]*,"packets":[0-9]*')"
	done
fi

secs=0
if [ ! -t 0 ]; then secs=${DEMO_SECONDS:-20}; fi
echo
if [ "$secs" -gt 0 ]; then
	echo "demo: running ${secs}s more (DEMO_SECONDS); logs in $LOG/"
	sleep "$secs"
else
	echo "demo: running; Ctrl-C stops it. Logs in $LOG/"
	while true; do sleep 3600; done
fi
