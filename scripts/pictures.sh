#!/usr/bin/env bash
# scripts/pictures.sh: makes the README's pictures in docs/media/ from the
# real tools and Graphviz (dot):
#   architecture.svg  from the hand-written docs/media/architecture.dot
#   tree-before.svg   the demo's tree as ocm-ctl tree -o dot prints it
#   tree-after.svg    the same after the demo's SIGKILL and repair
# It runs scripts/demo.sh briefly on free ports (DEMO_BASE_PORT, default
# 29100). Needs bin/ (make build) and dot.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dot >/dev/null || { echo "pictures: Graphviz's dot is not installed" >&2; exit 1; }
out=docs/media
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
DEMO_DOT=$tmp DEMO_SECONDS=1 DEMO_LOG=$tmp/log DEMO_BASE_PORT=${DEMO_BASE_PORT:-29100} ./scripts/demo.sh </dev/null >"$tmp/demo.txt"
for f in tree-before tree-after; do
	[ -s "$tmp/$f.dot" ] || { echo "pictures: the demo made no $f.dot:" >&2; cat "$tmp/demo.txt" >&2; exit 1; }
	dot -Tsvg "$tmp/$f.dot" -o "$out/$f.svg"
done
dot -Tsvg "$out/architecture.dot" -o "$out/architecture.svg"
echo "pictures: $out/architecture.svg $out/tree-before.svg $out/tree-after.svg"
