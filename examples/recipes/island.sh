#!/usr/bin/env bash
# Recipe: a distribution island. The upper tree is an origin and its
# ocm-server U; the island's root host is a viewer host of the upper tree
# whose mediator also serves the stream it relays under a plain path
# (--serve-relayed), which makes it the origin of the island; the island has
# its own ocm-server R, and its viewer hosts know only R. On one machine,
# on ports PORT (default 8570) to PORT+10; on real hosts each block runs on
# its own machine, with that machine's address instead of 127.0.0.1 (and
# --allow-origin naming the origin it reaches, see below). Prints U's and
# R's trees and a viewer's 3 s of packets.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
PORT=${PORT:-8570}
ORIGIN=127.0.0.1:$PORT ROOT=127.0.0.1:$((PORT + 3))

# The upper tree: the origin (here its test stream at /live) and server U.
bg origin rtsp-mediator --listen $ORIGIN --rtp off --rtcp off --test-source live
bg server-U ocm-server --listen 127.0.0.1:$((PORT + 1)) --http 127.0.0.1:$((PORT + 2))
ready origin
ready server-U

# The island's root host: a relay of the upper tree (server U) whose mediator
# serves /live as the stream of live?ORIGIN. Passive in the upper tree
# (--willing=false: its uplink is the island's), it still serves /live to the
# island. Off loopback, the mediator needs --allow-origin ORIGIN_HOST (it
# reaches the origin for the upper tree).
bg root-relay ocm-relay --server 127.0.0.1:$((PORT + 1)) --rtsp $ROOT \
	--control 127.0.0.1:$((PORT + 4)) --probe 127.0.0.1:$((PORT + 5)) --node-id root --willing=false
ready root-relay
bg root-mediator rtsp-mediator --listen $ROOT --rtp off --rtcp off \
	--resolver ocm --control 127.0.0.1:$((PORT + 4)) --serve-relayed "live=live?$ORIGIN"
ready root-mediator

# The island: server R, and a viewer host that knows only R. Its viewers open
# rtsp://VIEWER/live?ROOT; off loopback its mediator needs --allow-origin
# ROOT_HOST (the island's origin).
bg server-R ocm-server --listen 127.0.0.1:$((PORT + 6)) --http 127.0.0.1:$((PORT + 7))
ready server-R
bg viewer-relay ocm-relay --server 127.0.0.1:$((PORT + 6)) --rtsp 127.0.0.1:$((PORT + 8)) \
	--control 127.0.0.1:$((PORT + 9)) --probe 127.0.0.1:$((PORT + 10)) --node-id v1
ready viewer-relay
bg viewer-mediator rtsp-mediator --listen 127.0.0.1:$((PORT + 8)) --rtp off --rtcp off \
	--resolver ocm --control 127.0.0.1:$((PORT + 9))
ready viewer-mediator

# What a player on the viewer host opens (ffplay -rtsp_transport tcp URL):
rtsp-mediator read "rtsp://127.0.0.1:$((PORT + 8))/live?$ROOT" --duration 3s | tail -n 1
# U holds the root only; R holds the island's relays under the root:
ocm-ctl --server 127.0.0.1:$((PORT + 2)) tree
ocm-ctl --server 127.0.0.1:$((PORT + 7)) tree
