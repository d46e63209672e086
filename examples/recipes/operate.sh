#!/usr/bin/env bash
# Recipe: operate a running overlay (e.g. make demo's) with ocm-ctl: force
# one relay to reconnect (it rejoins by measurement, its players keep their
# sessions), drain another (its children move make-before-break, then it
# leaves), and print the tree.
#   examples/recipes/operate.sh RECONNECT_NODE DRAIN_NODE
# API (default 127.0.0.1:7080) is ocm-server's HTTP address; with --token
# set on the server, export OCM_TOKEN.
set -euo pipefail
BIN=$(cd "${BIN:-$(dirname "$0")/../../bin}" && pwd)
export PATH=$BIN:$PATH
API=${API:-127.0.0.1:7080}
[ $# = 2 ] || { sed -n '2,8p' "$0"; exit 2; }

ocm-ctl --server "$API" reconnect "$1"
ocm-ctl --server "$API" drain "$2"
sleep 2
ocm-ctl --server "$API" tree
