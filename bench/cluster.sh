#!/usr/bin/env bash
# bench/cluster.sh — one pxed server against two (--cluster) sharing one PostgreSQL, in one run.
#
# Usage (root): bench/cluster.sh [--pxed BIN] [--rates "1000 2000 4000"] [--period S] [--storm N]
#
# A hub namespace holds a bridge; the servers (198.18.0.1/15, 198.18.0.3/15) and the client
# namespace (198.18.0.2/15) hang off it by veth pairs: the clients' broadcasts reach every
# server, as on a real segment; nothing touches the host's interfaces. PostgreSQL runs from
# Debian's packages in a directory under /var/tmp (initdb + pg_ctl as the postgres user, Unix
# socket only, fsync and synchronous_commit on), a new database per run. Each run starts fresh
# servers with the default settings (ARP address probing on).
#
#   perfdhcp  as directly attached clients (broadcast, no relay, so that every server sees every
#             DISCOVER), a new client per exchange, at each --rate for --period seconds; an
#             exchange counts as lost after 4 s (-d 4). Reported: the DORA a second completed and
#             the losses of DISCOVER-OFFER and REQUEST-ACK.
#   storm     `pxed storm --clients N` (DHCP only) all at once: time until every machine has its
#             address, discover→offer p95, failures.
# Both against one server, then two. The CPU of the two servers is summed.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PXED_BIN="$REPO/pxed"
RATES="1000 2000 4000"
PERIOD=10
STORM=1000
while [ $# -gt 0 ]; do
	case "$1" in
	--pxed) PXED_BIN="$2"; shift 2 ;;
	--rates) RATES="$2"; shift 2 ;;
	--period) PERIOD="$2"; shift 2 ;;
	--storm) STORM="$2"; shift 2 ;;
	*) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
[ "$(id -u)" -eq 0 ] || { echo "cluster.sh: needs root (network namespaces)" >&2; exit 2; }
command -v perfdhcp >/dev/null || { echo "cluster.sh: needs perfdhcp (apt-get install kea-admin)" >&2; exit 2; }
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -n "$PG_BIN" ] || { echo "cluster.sh: needs PostgreSQL (apt-get install postgresql)" >&2; exit 2; }
[ -x "$PXED_BIN" ] || (cd "$REPO" && go build -o "$PXED_BIN" ./cmd/pxed)

TAG=$$
HUB="pxc-h-$TAG" C="pxc-c-$TAG"
WORK=$(mktemp -d /var/tmp/pxed-bench-cluster.XXXXXX)
PG_DIR=""
PGIDS=()
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

stop_servers() {
	local pg
	for pg in "${PGIDS[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
	sleep 1
	for pg in "${PGIDS[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
	PGIDS=()
}
cleanup() {
	stop_servers
	[ -z "$PG_DIR" ] || runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
	for ns in "$HUB" "$C" "pxc-s1-$TAG" "pxc-s2-$TAG"; do ip netns del "$ns" 2>/dev/null || true; done
	rm -rf "$WORK" "$PG_DIR"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

PG_DIR=$(mktemp -d /var/tmp/pxed-bench-pg.XXXXXX)
chmod 755 "$PG_DIR"
chown postgres:postgres "$PG_DIR"
runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust --no-locale -E UTF8 >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
	-o "-k $PG_DIR -c listen_addresses= -c fsync=on -c synchronous_commit=on" start >/dev/null
log "PostgreSQL $("$PG_BIN/postgres" --version | awk '{ print $NF }') on $PG_DIR"

# The segment: a bridge in the hub namespace, the client and two server namespaces on it.
ip netns add "$HUB"
ip -n "$HUB" link add br0 type bridge
ip -n "$HUB" link set br0 up
attach() { # attach NS IF ADDR
	ip netns add "$1" 2>/dev/null || true
	ip link add "$2" netns "$1" type veth peer name "h$2" netns "$HUB"
	ip -n "$HUB" link set "h$2" master br0 up
	ip -n "$1" addr add "$3" dev "$2"
	ip -n "$1" link set lo up
	ip -n "$1" link set "$2" up
}
attach "$C" vc 198.18.0.2/15
attach "pxc-s1-$TAG" vs1 198.18.0.1/15
attach "pxc-s2-$TAG" vs2 198.18.0.3/15

DB=0
# start_servers K: K fresh pxed servers on a new database.
start_servers() {
	DB=$((DB + 1))
	runuser -u postgres -- psql -h "$PG_DIR" -U postgres -d postgres -tAqc "CREATE DATABASE run$DB" >/dev/null
	local dsn="postgres://postgres@/run$DB?host=$PG_DIR&sslmode=disable" i ip
	for i in $(seq "$1"); do
		ip=198.18.0.$((2 * i - 1))
		mkdir -p "$WORK/s$i.$DB"
		setsid ip netns exec "pxc-s$i-$TAG" "$PXED_BIN" boot --interface "vs$i" --dhcp-range 198.18.1.0-198.19.255.250 \
			--store "$dsn" --cluster --server-id "s$i" --data-dir "$WORK/s$i.$DB" --http-addr "$ip:8080" --tftp-addr off \
			--kernel "$PXED_BIN" --log-level warn >"$WORK/s$i.$DB/log" 2>&1 &
		PGIDS+=($!)
	done
	for i in $(seq "$1"); do
		ip=198.18.0.$((2 * i - 1))
		for _ in $(seq 100); do
			[ "$(ip netns exec "pxc-s$i-$TAG" curl -sf "http://$ip:8080/api/cluster" 2>/dev/null |
				grep -c '"live": true')" = "$1" ] && break
			sleep 0.1
		done
	done
}
cpu_of() { # summed user+system ticks of the servers
	local t=0 pg pid
	for pg in "${PGIDS[@]}"; do
		for pid in $(pgrep -g "$pg"); do
			t=$((t + $(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
		done
	done
	echo "$t"
}

printf '%-8s %-7s %8s %8s %8s %10s\n' servers rate DORA/s DO-lost RA-lost cpu-ms/1k
for k in 1 2; do
	for rate in $RATES; do
		start_servers "$k"
		c0=$(cpu_of)
		out=$(timeout $((PERIOD + 30)) ip netns exec "$C" perfdhcp -4 -g single -l vc -r "$rate" -R 1000000 \
			-p "$PERIOD" -d 4 -W 4000000 2>&1 || true)
		c1=$(cpu_of)
		stop_servers
		sent=$(echo "$out" | awk '/^sent packets:/ { print $3 }' | sed -n 1p)
		ra_sent=$(echo "$out" | awk '/^sent packets:/ { print $3 }' | sed -n 2p)
		do_recv=$(echo "$out" | awk '/^received packets:/ { print $3 }' | sed -n 1p)
		ra_recv=$(echo "$out" | awk '/^received packets:/ { print $3 }' | sed -n 2p)
		ms=$(( (c1 - c0) * 10 ))
		printf '%-8s %-7s %8s %8s %8s %10s\n' "$k" "$rate" "$(( ${ra_recv:-0} / PERIOD ))" \
			"$(( ${sent:-0} - ${do_recv:-0} ))" "$(( ${ra_sent:-0} - ${ra_recv:-0} ))" \
			"$([ "${ra_recv:-0}" -gt 0 ] && echo $(( ms * 1000 / ra_recv )) || echo -)"
	done
done

echo
printf '%-8s %8s %10s %8s %8s\n' servers machines all-in-s offer-p95 failed
for k in 1 2; do
	start_servers "$k"
	json=$(ip netns exec "$C" "$PXED_BIN" storm --interface vc --clients "$STORM" --arch efi-x64,bios --json 2>/dev/null || true)
	stop_servers
	echo "$json" | python3 -c '
import json, sys
r = json.load(sys.stdin)
p95 = next((s["p95_ns"] for s in r["stages"] if s["stage"].startswith("discover")), 0)
print("%-8s %8d %10.2f %6.0fms %8d" % (sys.argv[1], r["booted"] + r["failed"], r["seconds"], p95 / 1e6, r["failed"]))' "$k"
done
