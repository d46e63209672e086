#!/usr/bin/env bash
# Recipe: publish a stream with ffmpeg from a source every machine has
# (lavfi's testsrc2), into rtsp-mediator --publish, and watch it through a
# relay over TCP. PORT (default 8560) is the origin's RTSP port, PORT+1 the
# relay's. Checks that the relay's reader receives for 3 s.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PORT=${PORT:-8560}

# The origin, accepting publishers:
bg origin rtsp-mediator --listen 127.0.0.1:$PORT --rtp off --rtcp off --publish
ready origin
# ffmpeg publishing a 320x240 test pattern in H264 over TCP:
bg ffmpeg ffmpeg -nostdin -re -f lavfi -i testsrc2=size=320x240:rate=25 \
	-c:v libx264 -preset veryfast -tune zerolatency -g 25 -pix_fmt yuv420p \
	-f rtsp -rtsp_transport tcp rtsp://127.0.0.1:$PORT/live
# A viewer host's mediator relaying it:
bg relay rtsp-mediator --listen 127.0.0.1:$((PORT + 1)) --rtp off --rtcp off
ready relay
sleep 2
# What a player opens (ffplay -rtsp_transport tcp URL); read counts packets:
rtsp-mediator read "rtsp://127.0.0.1:$((PORT + 1))/live?127.0.0.1:$PORT" --duration 3s | tail -n 1
