#!/usr/bin/env bash
# examples/lab.sh: a lab of real network namespaces running the overlay.
#
#   examples/lab.sh up       build it (root; tools from bin/, `make build` first)
#   examples/lab.sh status   the tree, and each reader's packets and loss
#   examples/lab.sh down     remove every namespace, link and process it made
#                            (also after a failed or partial up)
#
# What it builds (all addresses inside the lab's own namespaces, 10.77.0.0/16):
#
#   ocmlab-core    origin (rtsp-mediator --test-source test) rtsp://10.77.0.2:8554/test
#                  and ocm-server (OCM :7070, HTTP :7080), origin capacity 2
#                  (LAB_ORIGIN_CAPACITY)
#   ocmlab-rtr     the router: site A is bridge br-a (10.77.1.0/24), site B
#                  bridge br-b (10.77.2.0/24), the core on 10.77.0.0/24
#   ocmlab-h1..hN  viewer hosts, alternately on site A and site B (LAB_HOSTS,
#                  default 8): ocm-relay + rtsp-mediator --resolver ocm on
#                  :8554 + a reader (rtsp-mediator read) of the stream
#
# How to watch it, from the default namespace (a veth reaches the core):
#   monitor and API   http://10.77.254.2:7080/   (bin/ocm-ctl --server 10.77.254.2:7080 tree)
#   a viewer host     sudo ip netns exec ocmlab-h1 ffplay -rtsp_transport tcp 'rtsp://127.0.0.1:8554/test?10.77.0.2:8554'
#   logs              $LAB_DIR (default /tmp/ocmlab): one .out/.err per process
#
# Options (environment):
#   LAB_HOSTS=N        viewer hosts (default 8)
#   LAB_UPLINK=2mbit   each host's uplink limited with tc tbf
#   LAB_CAPACITY=N     each relay's --capacity (default: ocm-relay's)
#   LAB_ORIGIN_CAPACITY=N  the server's --origin-capacity (default 2)
#   LAB_DELAY=40ms     delay added between the sites, each way (a site A to
#                      site B ping takes 2x it more). With tc netem when the
#                      kernel has it: a netem qdisc on the router's two site
#                      bridges (it then delays core to site traffic too).
#                      Otherwise in user space: examples/netdelay in the
#                      router holds every packet between the sites in a
#                      timestamped queue for LAB_DELAY, between two TUN
#                      devices (dly-a, dly-b); policy routing sends site A to
#                      site B packets into dly-a (and B to A into dly-b), the
#                      program writes them out of the other TUN, and the
#                      router forwards them on. Core to site traffic is not
#                      delayed. Its cost: every packet between the sites is
#                      copied through user space (one read, one write) and
#                      crosses the router's routing twice; beyond 4096
#                      waiting packets per direction it drops and counts
#                      them (down prints the counts). up says which is used.
#                      The program: $BIN/netdelay, else go build into LAB_DIR.
#   LAB_LIGHT=1        the last host is a light client: its mediator answers
#                      with a 302 to the chosen relay (--resolver redirect),
#                      so no media crosses it; its relay is passive
#   LAB_ORIGIN=gst     the origin is GStreamer's RTSP server (a third-party
#                      origin: systest/testdata/gst-rtsp-origin.py, needs
#                      python3-gi and gst-rtsp-server) instead of rtsp-mediator
#   LAB_MULTICAST=1    LAN multicast in site A (needs LAB_HOSTS >= 3): h1's
#                      mediator also serves RTSP multicast (239.255.42.0/24,
#                      TTL 1), an ffmpeg on h3 plays it (udp_multicast), and
#                      examples/mcast-count.py counts the group's packets on
#                      h3 (site A) and h2 (site B); status shows both: site B
#                      stays at 0, the router does not pass it
set -euo pipefail
cd "$(dirname "$0")/.."
# The tools' directory; up says when it is missing (usage and down do not
# need it).
BIN=$(cd "${BIN:-bin}" 2>/dev/null && pwd || echo "${BIN:-bin}")
DIR=${LAB_DIR:-/tmp/ocmlab}
N=${LAB_HOSTS:-8}
P=ocmlab
ORIGIN=10.77.0.2:8554
URL_ORIGIN="rtsp://$ORIGIN/test"

ns() { ip netns exec "$@"; }

# run NS NAME CMD...: a process in a namespace, its pid in $DIR/pids.
run() {
	local n=$1 name=$2; shift 2
	ns "$n" "$@" >"$DIR/$name.out" 2>"$DIR/$name.err" &
	echo "$! $name" >>"$DIR/pids"
}

# ready NAME [PATTERN]: waits for a tool's ready line.
ready() {
	for _ in $(seq 100); do
		grep -q "${2:-\"event\":\"ready\"}" "$DIR/$1.out" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "lab: $1 did not get ready ($DIR/$1.err):" >&2
	tail -n 5 "$DIR/$1.err" >&2
	return 1
}

site() { if [ $(($1 % 2)) -eq 1 ]; then echo a; else echo b; fi; }
hostip() { local s; s=$(site "$1"); echo "10.77.$([ "$s" = a ] && echo 1 || echo 2).$((10 + $1))"; }

# delay: LAB_DELAY between the sites, with netem or in user space.
delay() {
	if ns $P-rtr tc qdisc add dev br-a root netem delay "$LAB_DELAY" 2>/dev/null; then
		ns $P-rtr tc qdisc add dev br-b root netem delay "$LAB_DELAY"
		echo "lab: delay between the sites: $LAB_DELAY each way, tc netem on the router's site bridges"
		return
	fi
	local nd="$BIN/netdelay"
	if [ ! -x "$nd" ]; then
		nd="$DIR/netdelay"
		go build -o "$nd" ./examples/netdelay
	fi
	run $P-rtr netdelay "$nd" --a dly-a --b dly-b --delay "$LAB_DELAY"
	ready netdelay
	# Packets coming back out of a TUN carry the other site's source:
	# no reverse-path filter on them.
	ns $P-rtr sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.dly-a.rp_filter=0 net.ipv4.conf.dly-b.rp_filter=0
	ns $P-rtr ip link set dly-a up
	ns $P-rtr ip link set dly-b up
	ns $P-rtr ip route add default dev dly-a table 101
	ns $P-rtr ip route add default dev dly-b table 102
	ns $P-rtr ip rule add iif br-a to 10.77.2.0/24 lookup 101
	ns $P-rtr ip rule add iif br-b to 10.77.1.0/24 lookup 102
	echo "lab: delay between the sites: $LAB_DELAY each way, in user space (no tc netem in this kernel): examples/netdelay between TUN devices dly-a and dly-b in $P-rtr, one copy per packet"
}

down() {
	# The delay (the router's only process) first, with SIGTERM, so it
	# says what it passed and dropped.
	local pid
	for pid in $(ip netns pids $P-rtr 2>/dev/null); do
		kill "$pid" 2>/dev/null || continue
		for _ in $(seq 20); do
			grep -q '"exit"' "$DIR/netdelay.out" 2>/dev/null && break
			sleep 0.1
		done
		grep '"exit"' "$DIR/netdelay.out" 2>/dev/null | sed 's/^/lab: netdelay: /' || true
	done
	if [ -f "$DIR/pids" ]; then
		while read -r pid _; do kill "$pid" 2>/dev/null || true; done <"$DIR/pids"
	fi
	# Whatever still runs inside the lab's namespaces (ip netns exec
	# children included) goes too.
	for n in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do
		for pid in $(ip netns pids "$n"); do kill -9 "$pid" 2>/dev/null || true; done
	done
	if [ -f "$DIR/pids" ]; then
		while read -r pid _; do kill -9 "$pid" 2>/dev/null || true; done <"$DIR/pids"
		rm -f "$DIR/pids"
	fi
	for n in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do
		ip netns del "$n"
	done
	ip link del "$P-def" 2>/dev/null || true
}

up() {
	if ip netns list | grep -q "^$P-"; then
		echo "lab: already up (examples/lab.sh down first)" >&2
		exit 1
	fi
	mkdir -p "$DIR"
	rm -f "$DIR"/*.out "$DIR"/*.err "$DIR/pids"
	echo "$N" >"$DIR/hosts"
	trap 'echo "lab: up failed; removing what it made" >&2; down' ERR

	for n in core rtr $(seq -f 'h%g' 1 "$N"); do
		ip netns add "$P-$n"
		ns "$P-$n" ip link set lo up
	done
	ns $P-rtr sysctl -qw net.ipv4.ip_forward=1
	# The core on the router.
	ip link add "$P-c0" type veth peer name "$P-r0"
	ip link set "$P-c0" netns $P-core name eth0
	ip link set "$P-r0" netns $P-rtr name core
	ns $P-core ip addr add 10.77.0.2/24 dev eth0
	ns $P-core ip link set eth0 up
	ns $P-core ip route add default via 10.77.0.1
	ns $P-rtr ip addr add 10.77.0.1/24 dev core
	ns $P-rtr ip link set core up
	# The default namespace reaches the core (monitor, API), nothing else.
	ip link add "$P-def" type veth peer name "$P-d1"
	ip link set "$P-d1" netns $P-core name def
	ip addr add 10.77.254.1/30 dev "$P-def"
	ip link set "$P-def" up
	ns $P-core ip addr add 10.77.254.2/30 dev def
	ns $P-core ip link set def up
	# Two sites, one bridge each.
	for s in a b; do
		local net; net=$([ $s = a ] && echo 1 || echo 2)
		ns $P-rtr ip link add "br-$s" type bridge
		ns $P-rtr ip addr add "10.77.$net.1/24" dev "br-$s"
		ns $P-rtr ip link set "br-$s" up
	done
	for i in $(seq "$N"); do
		local s ip net
		s=$(site "$i") ip=$(hostip "$i")
		net=$([ "$s" = a ] && echo 1 || echo 2)
		ip link add "$P-h$i" type veth peer name "$P-p$i"
		ip link set "$P-h$i" netns "$P-h$i" name eth0
		ip link set "$P-p$i" netns $P-rtr name "h$i"
		ns $P-rtr ip link set "h$i" master "br-$s" up
		ns "$P-h$i" ip addr add "$ip/24" dev eth0
		ns "$P-h$i" ip link set eth0 up
		ns "$P-h$i" ip route add default via "10.77.$net.1"
		if [ -n "${LAB_UPLINK:-}" ]; then
			ns "$P-h$i" tc qdisc add dev eth0 root tbf rate "$LAB_UPLINK" burst 32kbit latency 400ms
		fi
	done

	if [ -n "${LAB_DELAY:-}" ]; then
		delay
	fi

	if [ "${LAB_ORIGIN:-}" = gst ]; then
		run $P-core origin /usr/bin/python3 systest/testdata/gst-rtsp-origin.py 8554 0.0.0.0
		ready origin '^ready'
	else
		run $P-core origin "$BIN/rtsp-mediator" --listen :8554 --rtp off --rtcp off --test-source test
		ready origin
	fi
	if [ "${LAB_MULTICAST:-}" = 1 ] && [ "$N" -lt 3 ]; then
		echo "lab: LAB_MULTICAST needs LAB_HOSTS >= 3" >&2
		false
	fi
	run $P-core server "$BIN/ocm-server" --listen :7070 --http :7080 --origin-capacity "${LAB_ORIGIN_CAPACITY:-2}" --heartbeat 500ms
	ready server
	for i in $(seq "$N"); do
		local ip; ip=$(hostip "$i")
		local resolver=ocm willing=true
		if [ "${LAB_LIGHT:-}" = 1 ] && [ "$i" = "$N" ]; then
			# A light client: its relay relays nothing, and its mediator
			# answers the player with a 302 to the chosen relay.
			resolver=redirect willing=false
		fi
		local cap=()
		if [ -n "${LAB_CAPACITY:-}" ]; then
			cap=(--capacity "$LAB_CAPACITY")
		fi
		run "$P-h$i" "relay-h$i" "$BIN/ocm-relay" --server 10.77.0.2:7070 --rtsp "$ip:8554" --node-id "h$i" --willing="$willing" "${cap[@]}"
		ready "relay-h$i"
		local udp=(--rtp off --rtcp off)
		if [ "${LAB_MULTICAST:-}" = 1 ] && [ "$i" = 1 ]; then
			udp=(--rtp "$ip:8000" --rtcp "$ip:8001" --multicast-range 239.255.42.0/24 --multicast-rtp 8002 --multicast-ttl 1)
		fi
		run "$P-h$i" "mediator-h$i" "$BIN/rtsp-mediator" --listen :8554 "${udp[@]}" \
			--resolver "$resolver" --allow-origin 10.77.0.0/16
		ready "mediator-h$i"
		run "$P-h$i" "reader-h$i" "$BIN/rtsp-mediator" read "rtsp://127.0.0.1:8554/test?$ORIGIN" --interval 1s
		sleep 0.5
	done
	if [ "${LAB_MULTICAST:-}" = 1 ]; then
		run $P-h3 mcast-a /usr/bin/python3 examples/mcast-count.py 239.255.42.0/24 8002 "$DIR/mcast-a.count"
		run $P-h2 mcast-b /usr/bin/python3 examples/mcast-count.py 239.255.42.0/24 8002 "$DIR/mcast-b.count"
		run $P-h3 mcast-player ffmpeg -nostdin -loglevel warning -rtsp_transport udp_multicast \
			-i "rtsp://$(hostip 1):8554/test?$ORIGIN" -f null -
	fi
	trap - ERR
	echo "lab: up: $N viewer hosts on two sites; monitor http://10.77.254.2:7080/; logs in $DIR"
}

status() {
	N=$(cat "$DIR/hosts" 2>/dev/null || echo "$N")
	if ! ip netns list | grep -q "^$P-core"; then
		echo "lab: not up"
		exit 1
	fi
	"$BIN/ocm-ctl" --server 10.77.254.2:7080 tree
	echo
	for i in $(seq "$N"); do
		local f="$DIR/reader-h$i.out" line
		line=$(tail -n 1 "$f" 2>/dev/null | sed -nE 's/.*"packets":([0-9]+).*"lost":([0-9]+).*/packets \1, lost \2/p')
		printf 'h%-3s site %s  %-12s reader: %s\n' "$i" "$(site "$i")" "$(hostip "$i")" "${line:-nothing yet}"
	done
	if [ -f "$DIR/mcast-a.count" ] || [ -f "$DIR/mcast-b.count" ]; then
		echo
		echo "multicast from h1 (TTL 1): site a (h3) $(cat "$DIR/mcast-a.count" 2>/dev/null || echo 'nothing yet'); site b (h2) $(cat "$DIR/mcast-b.count" 2>/dev/null || echo 'nothing yet')"
	fi
}

if [ "$(id -u)" != 0 ]; then
	echo "lab: needs root (network namespaces)" >&2
	exit 1
fi
case ${1:-} in
up)
	if [ ! -x "$BIN/ocm-server" ]; then
		echo "lab: no tools in $BIN/: run make build first (or set BIN)" >&2
		exit 1
	fi
	up
	;;
down) down; echo "lab: down" ;;
status) status ;;
*) sed -n '2,/^set -e/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
