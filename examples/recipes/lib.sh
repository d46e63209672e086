# Sourced by the recipes: start tools in the background, wait for their
# ready line, stop them all on exit. BIN (default bin/) holds the tools;
# the recipes put it first on PATH so they read as a user types them.
BIN=$(cd "${BIN:-$(dirname "${BASH_SOURCE[0]}")/../../bin}" && pwd)
export PATH=$BIN:$PATH
LOG=$(mktemp -d)
pids=()
trap 'rc=$?; kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; [ $rc = 0 ] || tail -n 5 "$LOG"/*.err >&2; rm -rf "$LOG"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# bg NAME CMD...: runs CMD in the background, waits for a ready line when
# it prints one (the tools do; ffmpeg does not).
bg() {
	local name=$1; shift
	"$@" <&0 >"$LOG/$name.out" 2>"$LOG/$name.err" &
	pids+=($!)
}
ready() {
	for _ in $(seq 100); do
		grep -q '"event":"ready"' "$LOG/$1.out" 2>/dev/null && return 0
		kill -0 "${pids[-1]}" 2>/dev/null || break
		sleep 0.1
	done
	echo "recipe: $1 did not start:" >&2
	tail -n 5 "$LOG/$1.err" >&2
	exit 1
}
