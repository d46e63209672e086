#!/bin/sh
# Regenerates clip.h264, the test stream embedded in the mediator: 10 s of
# ffmpeg's testsrc pattern (moving gradient and a frame counter) as raw
# Annex-B H264, 640x360 at 25 fps. Constraints and why:
#   - baseline profile, no B-frames: every player decodes it and packets go
#     out in presentation order, so RTP timestamps simply step by 3600;
#   - a closed GOP of 25 frames (1 s) with SPS/PPS repeated before each IDR:
#     a reader joining mid-stream decodes within a second;
#   - a 1 Mbit/s target (the easy content undershoots it) keeps the file
#     under 1 MB, and one encoder thread makes the output reproducible.
# Usage: ./gen-clip.sh [output]   (default: clip.h264 next to this script)
set -eu
out=${1:-"$(dirname "$0")/clip.h264"}
ffmpeg -hide_banner -loglevel error -y \
	-f lavfi -i "testsrc=size=640x360:rate=25:duration=10" \
	-c:v libx264 -threads 1 -profile:v baseline -preset medium \
	-pix_fmt yuv420p -bf 0 -g 25 -keyint_min 25 -sc_threshold 0 \
	-b:v 1000k -maxrate 1100k -bufsize 550k \
	-x264-params repeat-headers=1:open-gop=0 \
	-bsf:v h264_mp4toannexb -f h264 "$out"
ls -l "$out"
