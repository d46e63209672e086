#!/usr/bin/env bash
# make demo: the paper's trial on this machine, on the built-in test stream.
#
# What it builds (default ports; DEMO_BASE_PORT=B moves them all, see --help):
#
#   origin      rtsp-mediator --test-source test     rtsp://127.0.0.1:8554/test
#   ocm-server  trees on 127.0.0.1:7070, API and monitor page on http://127.0.0.1:7080/
#               (--origin-capacity 2: the origin serves two relays)
#   active1..5  ocm-relay (capacity 2, --max-level 2) + rtsp-mediator --resolver ocm
#               on 127.0.0.1:8555..8559, each with a player: measurement builds
#               origin -> 2 relays -> 3 relays
#   passive1    ocm-relay --willing=false + rtsp-mediator on 127.0.0.1:8560 and a
#               player: receives through the overlay, relays to no one
#   plain1      a player pulling rtsp://127.0.0.1:8554/test from the origin itself
#
# The players are `rtsp-mediator read` (packets and loss, no window). The demo
# prints the monitor URL, the tree, the URL to hand a player, then kills a
# level-1 relay with SIGKILL and prints the repaired tree and the players'
# counts. How to watch it: open the monitor URL, or
#   ffplay -rtsp_transport tcp 'rtsp://127.0.0.1:8559/test?127.0.0.1:8554'
#   bin/ocm-ctl --server 127.0.0.1:7080 tree
# Runs until Ctrl-C when started from a terminal, else for DEMO_SECONDS
# (default 20). Ctrl-C, SIGTERM or the end stop every process it started;
# logs are in DEMO_LOG (default .demo/).
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
	cat <<'EOF'
usage: scripts/demo.sh [--base-port N] [--seconds N] [--log DIR]

  --base-port N  every port from N up (same as DEMO_BASE_PORT=N): the origin's
                 RTSP port is N, the viewer hosts' N+1..N+6, ocm-server N+10
                 (OCM) and N+11 (HTTP), the relays' control ports N+20..N+25
                 and probe ports (UDP) N+30..N+35. Default: 8554, 8555-8560,
                 7070, 7080, 7175-7180, 7275-7280.
  --seconds N    run N seconds after the repair, then stop (DEMO_SECONDS;
                 default: until Ctrl-C from a terminal, 20 otherwise)
  --log DIR      where the tools' logs go (DEMO_LOG, default .demo)

DEMO_DOT=DIR saves the tree before and after the kill as Graphviz files
(DIR/tree-before.dot, DIR/tree-after.dot; scripts/pictures.sh uses it).
EOF
}

BIN=${BIN:-bin}
LOG=${DEMO_LOG:-.demo}
BASE=${DEMO_BASE_PORT:-}
SECS=${DEMO_SECONDS:-}
while [ $# -gt 0 ]; do
	case $1 in
	--base-port) BASE=$2; shift 2 ;;
	--seconds) SECS=$2; shift 2 ;;
	--log) LOG=$2; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "demo: unknown argument $1" >&2; usage >&2; exit 2 ;;
	esac
done

if [ -n "$BASE" ]; then
	case $BASE in '' | *[!0-9]*) echo "demo: DEMO_BASE_PORT must be a port number, not '$BASE'" >&2; exit 2 ;; esac
	if [ "$BASE" -lt 1024 ] || [ "$BASE" -gt 65500 ]; then
		echo "demo: DEMO_BASE_PORT $BASE is outside 1024..65500" >&2; exit 2
	fi
	RTSP=$BASE VIEW=$((BASE + 1)) OCM=$((BASE + 10)) HTTP=$((BASE + 11)) CTL=$((BASE + 20)) PROBE=$((BASE + 30))
else
	RTSP=8554 VIEW=8555 OCM=7070 HTTP=7080 CTL=7175 PROBE=7275
fi
ORIGIN=127.0.0.1:$RTSP
API=127.0.0.1:$HTTP

# The viewer hosts: NAME KIND, in the order they join.
hosts=(active1 active2 active3 active4 active5 passive1)

mkdir -p "$LOG"
rm -f "$LOG"/*.out "$LOG"/*.err

# A TCP port someone already listens on is said in one line, before anything
# starts. (UDP probe ports are checked by the relay itself: see start.)
tcp_ports="$RTSP $OCM $HTTP"
for i in "${!hosts[@]}"; do tcp_ports+=" $((VIEW + i)) $((CTL + i))"; done
for p in $tcp_ports; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		echo "demo: port $p is already in use (stop what listens there, or choose other ports with DEMO_BASE_PORT=N)" >&2
		exit 1
	fi
done

pids=()
stopping=0
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	stopping=1
	# Everything this script started is its child; TERM them (relays leave
	# gracefully), then KILL what is still there after 3 s.
	kill "${pids[@]}" 2>/dev/null || true
	for _ in $(seq 30); do
		pgrep -P $$ >/dev/null 2>&1 || break
		sleep 0.1
	done
	pkill -KILL -P $$ 2>/dev/null || true
	wait 2>/dev/null || true
	echo "demo: stopped; logs in $LOG/"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# pause N: sleeps in a way a signal interrupts at once.
pause() {
	sleep "$1" &
	wait $! || true
}

# start NAME ARGS...: runs a tool in the background and waits for its ready
# line. A tool that cannot listen is said in one line naming the port.
start() {
	local name=$1; shift
	"$@" >"$LOG/$name.out" 2>"$LOG/$name.err" &
	local pid=$!
	pids+=("$pid")
	eval "pid_${name//-/_}=$pid"
	for _ in $(seq 100); do
		if grep -q '"event":"ready"' "$LOG/$name.out" 2>/dev/null; then return 0; fi
		if ! kill -0 "$pid" 2>/dev/null; then
			local port
			port=$(grep -o '[0-9.]*:[0-9]*: bind: address already in use' "$LOG/$name.err" | head -1 | sed -E 's/^[0-9.]*:([0-9]+).*/\1/' || true)
			if [ -n "$port" ]; then
				echo "demo: port $port is already in use ($name could not listen; choose other ports with DEMO_BASE_PORT=N)" >&2
			else
				echo "demo: $name failed to start ($LOG/$name.err):" >&2
				tail -n 5 "$LOG/$name.err" >&2
			fi
			exit 1
		fi
		pause 0.1
	done
	echo "demo: $name did not get ready within 10 s ($LOG/$name.err)" >&2
	exit 1
}

echo "demo: monitor: http://$API/   (ocm-server's page; API under /api/v1/)"

start origin "$BIN/rtsp-mediator" --listen "$ORIGIN" --rtp off --rtcp off --test-source test --stats-interval 5s
start server "$BIN/ocm-server" --listen "127.0.0.1:$OCM" --http "$API" --origin-capacity 2 --heartbeat 500ms --report-interval 2s

for i in "${!hosts[@]}"; do
	name=${hosts[$i]}
	willing=true
	[ "${name%%[0-9]*}" = passive ] && willing=false
	start "relay-$name" "$BIN/ocm-relay" --server "127.0.0.1:$OCM" --control "127.0.0.1:$((CTL + i))" \
		--probe "127.0.0.1:$((PROBE + i))" --node-id "$name" --capacity 2 --max-level 2 --willing="$willing"
	start "mediator-$name" "$BIN/rtsp-mediator" --listen "127.0.0.1:$((VIEW + i))" --rtp off --rtcp off \
		--resolver ocm --control "127.0.0.1:$((CTL + i))" --stats-interval 5s
	"$BIN/rtsp-mediator" read "rtsp://127.0.0.1:$((VIEW + i))/test?$ORIGIN" --interval 1s >"$LOG/player-$name.out" 2>&1 &
	pids+=($!)
	pause 0.7
done
"$BIN/rtsp-mediator" read "rtsp://$ORIGIN/test" --interval 1s >"$LOG/player-plain1.out" 2>&1 &
pids+=($!)
pause 1.5

ctl() { "$BIN/ocm-ctl" --server "$API" "$@"; }

cat <<MSG

demo: the clients, one of each kind (the paper's three):
  active    active1..active5  ocm-relay + rtsp-mediator on 127.0.0.1:$VIEW..$((VIEW + 4)): receive through the overlay and relay to others
  passive   passive1          ocm-relay --willing=false + rtsp-mediator on 127.0.0.1:$((VIEW + 5)): receives through the overlay, relays to no one
  plain     plain1            a player on rtsp://$ORIGIN/test, straight from the origin (not in the tree)

demo: the tree ocm-server built by measurement (ocm-ctl tree):
MSG
ctl tree
[ -n "${DEMO_DOT:-}" ] && ctl -o dot tree >"$DEMO_DOT/tree-before.dot"
cat <<MSG

demo: watch through any viewer host (its mediator serves RTSP over TCP):
    ffplay -rtsp_transport tcp 'rtsp://127.0.0.1:$((VIEW + 4))/test?$ORIGIN'
    gst-launch-1.0 rtspsrc protocols=tcp location='rtsp://127.0.0.1:$((VIEW + 4))/test?$ORIGIN' ! decodebin ! autovideosink
MSG

# Kill a level-1 relay that has children, the way a viewer's host dies.
victim=$(ctl -o json tree | grep -o '"node":"active[0-9]","parent":"[a-z0-9]*","level":1,"children":\["' | head -1 | grep -o 'active[0-9]' || true)
if [ -n "$victim" ]; then
	echo
	echo "demo: kill -9 $victim (its relay and mediator); its children are repaired:"
	eval "victims=\"\$pid_relay_$victim \$pid_mediator_$victim\""
	# shellcheck disable=SC2086
	{ kill -9 $victims; wait $victims; } 2>/dev/null || true
	pause 2
	ctl tree
	[ -n "${DEMO_DOT:-}" ] && ctl -o dot tree >"$DEMO_DOT/tree-after.dot"
	echo
	echo "demo: the players kept their sessions (packets, lost):"
	for name in "${hosts[@]}" plain1; do
		[ "$name" = "$victim" ] && continue
		printf '  %-9s %s\n' "$name" "$(tail -n 1 "$LOG/player-$name.out" | sed -nE 's/.*"packets":([0-9]+).*"lost":([0-9]+).*/packets \1, lost \2/p')"
	done
else
	echo "demo: no level-1 relay with children to kill (see $LOG/server.err)" >&2
fi

if [ -z "$SECS" ] && [ ! -t 0 ]; then SECS=20; fi
echo
if [ -n "$SECS" ] && [ "$SECS" -gt 0 ]; then
	echo "demo: running ${SECS}s more (DEMO_SECONDS); logs in $LOG/"
	pause "$SECS"
else
	echo "demo: running; Ctrl-C stops it. Logs in $LOG/"
	while true; do pause 3600; done
fi
