#!/usr/bin/env bash
# Recipe: rtp-fanout controlled at run time through a FIFO on its stdin.
# It pulls the built-in test stream over RTSP and sends it to one UDP
# output; a second output is added through the FIFO, then listed. PORT
# (default 8560) is the origin's RTSP port; the outputs are PORT+10 and
# PORT+20 (RTP) on 127.0.0.1.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PORT=${PORT:-8560}

bg origin rtsp-mediator --listen 127.0.0.1:$PORT --rtp off --rtcp off --test-source test
ready origin

mkfifo "$LOG/fifo"
# Hold the FIFO open for writing (fd 3), so rtp-fanout's stdin does not see
# end-of-file between two commands.
exec 3<>"$LOG/fifo"
bg fanout rtp-fanout --from rtsp://127.0.0.1:$PORT/test --to udp://127.0.0.1:$((PORT + 10)) \
	--sdp "$LOG/lan.sdp" <"$LOG/fifo"
ready fanout
echo '{"op":"add","to":"udp://127.0.0.1:'$((PORT + 20))'"}' >&3
echo '{"op":"list"}' >&3
sleep 1
grep "\"event\":\"reply\"" "$LOG/fanout.out"
