#!/usr/bin/env bash
# make demo: the whole system on the built-in test stream, on this machine.
#
#   origin     rtsp-mediator --test-source test      rtsp://127.0.0.1:8554/test
#   viewer 1   rtsp-mediator (pulls from the origin) rtsp://127.0.0.1:8555/test?127.0.0.1:8554
#   viewer 2   rtsp-mediator (pulls through viewer 1) rtsp://127.0.0.1:8556/test?127.0.0.1:8554
#
# A built-in reader plays through viewer 2 and prints what arrives. Open the
# printed URLs with ffplay or GStreamer to watch. Runs until Ctrl-C when
# started from a terminal, else for DEMO_SECONDS (default 20).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-bin}
LOG=${DEMO_LOG:-.demo}
mkdir -p "$LOG"

pids=()
cleanup() {
	trap - EXIT INT TERM
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	echo "demo: stopped; logs in $LOG/"
}
trap cleanup EXIT INT TERM

# start NAME ARGS...: runs a tool, waits for its ready line.
start() {
	local name=$1; shift
	"$@" >"$LOG/$name.out" 2>"$LOG/$name.err" &
	pids+=($!)
	for _ in $(seq 100); do
		if grep -q '"event":"ready"' "$LOG/$name.out" 2>/dev/null; then return 0; fi
		if ! kill -0 "${pids[-1]}" 2>/dev/null; then
			echo "demo: $name failed to start:" >&2; cat "$LOG/$name.err" >&2; exit 1
		fi
		sleep 0.1
	done
	echo "demo: $name did not get ready" >&2; exit 1
}

start origin  "$BIN/rtsp-mediator" --listen 127.0.0.1:8554 --rtp 127.0.0.1:8000 --rtcp 127.0.0.1:8001 --test-source test --stats-interval 5s
start viewer1 "$BIN/rtsp-mediator" --listen 127.0.0.1:8555 --rtp 127.0.0.1:8002 --rtcp 127.0.0.1:8003 --stats-interval 5s
start viewer2 "$BIN/rtsp-mediator" --listen 127.0.0.1:8556 --rtp 127.0.0.1:8004 --rtcp 127.0.0.1:8005 --resolver parent:127.0.0.1:8555 --stats-interval 5s

URL='rtsp://127.0.0.1:8556/test?127.0.0.1:8554'
cat <<MSG
demo: origin -> viewer 1 -> viewer 2 is up. Watch through the relays with:
    ffplay '$URL'
    gst-launch-1.0 rtspsrc location='$URL' ! decodebin ! autovideosink
  or straight from the origin: ffplay rtsp://127.0.0.1:8554/test
demo: a built-in reader now plays $URL (one line a second):
MSG

secs=0
if [ ! -t 0 ]; then secs=${DEMO_SECONDS:-20}; fi
if [ "$secs" -gt 0 ]; then
	"$BIN/rtsp-mediator" read "$URL" --duration "${secs}s"
else
	"$BIN/rtsp-mediator" read "$URL" || true
fi
