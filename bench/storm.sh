#!/usr/bin/env bash
# bench/storm.sh — time to all booted for a storm of PXE machines: pxed against dnsmasq.
#
# Usage (root): bench/storm.sh [--clients N] [--nbp-mib N] [--http-mib N] [--arch A] [--scale F]
#                              [--servers pxed,dnsmasq] [--nbp-only] [--one-client-addr] [--out DIR] [--perf]
#                              [--perf-client] [--cpu-trace]
#
# Each server runs alone in a server namespace (198.18.0.1/15) joined by a veth pair to a
# client namespace (198.18.0.2/15); nothing touches the host's interfaces. `pxed storm` boots
# --clients machines at once (distinct MACs on one raw socket): full DHCP, the NBP (--nbp-mib
# MiB, random bytes named undionly.kpxe/snponly.efi) over TFTP, then as iPXE (--chain) DHCP
# again, the script and a --http-mib MiB kernel over HTTP.
#   pxed     pxed boot --dhcp-range (full DHCP server, TFTP, HTTP; leases in SQLite)
#   dnsmasq  full DHCP + its TFTP (--tftp-max 1000), busybox httpd for the script and kernel
#            (dnsmasq has no HTTP)
# Both lease from 198.18.1.0 up with address probing off on both sides (dnsmasq --no-ping,
# pxed --dhcp-probe-timeout off), so the comparison is like for like. dnsmasq keeps its default
# log line per DHCP and TFTP step (pxed runs at --log-level warn): with --quiet-dhcp --quiet-tftp
# 44 and 61 of 500 machines got no offer in two runs at timeout scale 1, against none without. Prints both reports and the ratio of time to all booted.
# The machines wait for DHCP answers as firmware does (4, 8, 16, 32 s windows; EDK II collects
# offers for a whole window); --scale 0.25 shortens every window to a quarter for both servers.
# --nbp-only stops each machine after its NBP (DHCP and TFTP only); --arch ipxe-efi skips the
# NBP (DHCP and HTTP only). Each machine downloads from the address it leased (`pxed storm
# --machine-addrs`), as real machines do; --one-client-addr downloads every file from the client
# namespace's own address instead (servers then see one client for 500 machines, and pxed's
# per-client limits queue them).
# CPU: for each storm the script prints the CPU-seconds of the whole machine (user, system,
# softirq: veth and TCP work lands there), of the server processes (with the children they
# reaped; busybox httpd's per-connection children are not reaped that way, so the dnsmasq
# figure is dnsmasq's alone) and of the storm client (its own getrusage).
# --out DIR keeps the JSON reports, CPU figures, progress lines (NAME.progress, redrawn
# every 0.5 s: machines in flight per phase over time), the server's log (NAME.log) and its
# neighbour table after the storm (NAME.neigh), each machine's steps (NAME.machines.json:
# start, duration, TFTP packets resent and first answer of every DHCP exchange and download),
# both namespaces' /proc/net/snmp and veth counters before and after (NAME.snmp-*, NAME.link-*) and pxed's /metrics after
# its storm (pxed.metrics); the UDP datagrams either kernel dropped, and the packets the
# machine's per-CPU backlogs dropped (veth delivery under CPU load), are printed per storm; --perf also records a system-wide
# `perf record -g` profile of each storm there (NAME.perf.data).
# Before each storm the script waits until the neighbour entries of namespaces it deleted have gone
# (wait_neigh: the host's IPv4 neighbour table is shared by every namespace, 1024 entries by
# default) and prints how often the table was full during each storm.
# --perf-client records the storm client alone (`perf record -F 999 -g -p`, NAME.client.perf.data)
# and counts context switches, futex and epoll_pwait calls of the client and of the server's main
# process (`perf stat`, NAME.client.perfstat and NAME.server.perfstat).
# After each storm the script counts the server's neighbour entries that hold a simulated machine's MAC: the machines
# download from kernel sockets, so such an entry sends that machine's packets nowhere.
# --cpu-trace samples every CPU's user/system/softirq time and the server's and client's CPU every
# 100 ms through each storm (bench/cputrace.py: NAME.cputrace) and prints their averages over the
# NBP and HTTP stages; `bench/cputrace.py show DIR/NAME.cputrace DIR/NAME.machines.json` prints
# the whole trace with the machines in each stage. Every storm also prints the server's TCP
# retransmissions and timeouts (both namespaces' /proc/net/netstat are kept in --out DIR).
# PXED_BIN runs that pxed binary instead of building this tree's (compare two builds);
# STORM_BIN runs the storm client from that binary instead (default: the pxed above; it
# must know --machines-json);
# PXED_ARGS (e.g. "--log-level debug") is added to pxed boot's flags.
# SRV_CPUS=0 CLI_CPUS=1 pins the servers (and their children) and the storm client to those
# CPUs (taskset -c), every server the same way: a "server with a core of its own" figure.
# Exit: 0 when both storms booted every machine, 1 otherwise, 2 on usage errors.
set -euo pipefail

CLIENTS=500
NBP_MIB=1
HTTP_MIB=30
ARCH=bios,efi-x64
SCALE=1
SERVERS=pxed,dnsmasq
OUT=
PERF=0
PERF_CLIENT=0
CPU_TRACE=0
CHAIN=--chain
MACHINE_ADDRS=--machine-addrs

usage() {
	sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
while [ $# -gt 0 ]; do
	case "$1" in
	--clients) CLIENTS="$2"; shift 2 ;;
	--nbp-mib) NBP_MIB="$2"; shift 2 ;;
	--http-mib) HTTP_MIB="$2"; shift 2 ;;
	--arch) ARCH="$2"; shift 2 ;;
	--scale | --timeout-scale) SCALE="$2"; shift 2 ;;
	--servers) SERVERS="$2"; shift 2 ;;
	--out) OUT="$2"; shift 2 ;;
	--perf) PERF=1; shift ;;
	--perf-client) PERF_CLIENT=1; shift ;;
	--cpu-trace) CPU_TRACE=1; shift ;;
	--nbp-only) CHAIN=; shift ;;
	--one-client-addr) MACHINE_ADDRS=; shift ;;
	-h | --help) usage ;;
	*) echo "storm.sh: unknown argument $1" >&2; usage ;;
	esac
done
for v in CLIENTS NBP_MIB HTTP_MIB; do
	case "${!v}" in
	'' | *[!0-9]*) echo "storm.sh: --$(echo "$v" | tr 'A-Z_' 'a-z-') wants a whole number, got '${!v}'" >&2; exit 2 ;;
	esac
done
if [ "$CLIENTS" -lt 1 ] || [ "$CLIENTS" -gt 5000 ]; then
	echo "storm.sh: --clients $CLIENTS: write 1..5000" >&2
	exit 2
fi
case ",$SERVERS," in
*,pxed,* | *,dnsmasq,*) ;;
*) echo "storm.sh: --servers $SERVERS: write pxed, dnsmasq or pxed,dnsmasq" >&2; exit 2 ;;
esac
if [ "$PERF$PERF_CLIENT$CPU_TRACE" != 000 ] && [ -z "$OUT" ]; then
	echo "storm.sh: --perf, --perf-client and --cpu-trace write to --out DIR: add --out" >&2
	exit 2
fi
if [ "$PERF$PERF_CLIENT" != 00 ] && ! command -v perf >/dev/null; then
	echo "storm.sh: --perf needs perf (apt-get install linux-perf)" >&2
	exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "storm.sh: needs root (network namespaces, raw sockets)" >&2
	exit 2
fi
for bin in dnsmasq busybox ip go; do
	command -v "$bin" >/dev/null || { echo "storm.sh: needs $bin (apt-get install dnsmasq-base busybox-static iproute2)" >&2; exit 2; }
done

REPO=$(cd "$(dirname "$0")/.." && pwd)
TAG=$$
NS_S="pxs-s-$TAG"
NS_C="pxs-c-$TAG"
IF_S="pxss$TAG"
IF_C="pxsc$TAG"
SRV=198.18.0.1
WORK=$(mktemp -d /var/tmp/pxed-bench-storm.XXXXXX)
PGIDS=()

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

# start NAME CMD... runs CMD in the server namespace as the leader of a new process group
# (setsid), output to $WORK/NAME.log, and records the group to stop it later.
start() {
	local name=$1
	shift
	setsid ip netns exec "$NS_S" ${SRV_CPUS:+taskset -c "$SRV_CPUS"} "$@" >"$WORK/$name.log" 2>&1 &
	PGIDS+=($!)
}

# stop_all ends the process groups this script started: SIGTERM, then SIGKILL after 3 s.
stop_all() {
	local pg
	for pg in "${PGIDS[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
	for _ in $(seq 30); do
		local alive=0
		for pg in "${PGIDS[@]}"; do kill -0 -- "-$pg" 2>/dev/null && alive=1; done
		[ $alive -eq 0 ] && break
		sleep 0.1
	done
	for pg in "${PGIDS[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
	for pg in "${PGIDS[@]}"; do wait "$pg" 2>/dev/null || true; done
	PGIDS=()
}

cleanup() {
	stop_all
	ip netns del "$NS_S" 2>/dev/null || true
	ip netns del "$NS_C" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# neigh_stat prints two numbers from /proc/net/stat/arp_cache: the IPv4 neighbour entries of the
# whole host (every network namespace shares one table, bounded by net.ipv4.neigh.default.gc_thresh3)
# and how often the table was full (table_fulls, summed over CPUs).
neigh_stat() {
	python3 -c '
rows = [l.split() for l in open("/proc/net/stat/arp_cache")][1:]
print(int(rows[0][0], 16), sum(int(r[12], 16) for r in rows))'
}

# wait_neigh waits (at most 60 s) until the neighbour entries of the namespaces deleted before have
# gone: the kernel frees them up to ~30 s after `ip netns del` (net_down takes the link down first,
# which frees them at once), and a storm started meanwhile adds its 500 on top: past gc_thresh3 (1024 for the whole host) new
# entries fail ("neighbor table overflow!" in dmesg), and the server's unicast replies to them are
# dropped (counted as UDP SndbufErrors and IP OutDiscards; the server's sendmsg succeeds).
wait_neigh() {
	local n waited=0
	for _ in $(seq 600); do
		read -r n _ < <(neigh_stat)
		[ "$n" -le "$((NEIGH_BASE + 20))" ] && break
		sleep 0.1
		waited=$((waited + 1))
	done
	[ "$waited" -eq 0 ] || log "waited $((waited / 10)).$((waited % 10)) s for the deleted namespaces' neighbour entries to go ($n left, $NEIGH_BASE before the first storm)"
}

net_up() {
	wait_neigh
	ip netns add "$NS_S"
	ip netns add "$NS_C"
	ip link add "$IF_S" netns "$NS_S" type veth peer name "$IF_C" netns "$NS_C"
	ip -n "$NS_S" addr add "$SRV/15" dev "$IF_S"
	ip -n "$NS_C" addr add 198.18.0.2/15 dev "$IF_C"
	for ns in "$NS_S" "$NS_C"; do ip -n "$ns" link set lo up; done
	ip -n "$NS_S" link set "$IF_S" up
	ip -n "$NS_C" link set "$IF_C" up
}

net_down() {
	# The link going down frees its neighbour entries at once; the namespace's deletion would
	# free them only when the kernel gets round to it (wait_neigh).
	ip -n "$NS_S" link set "$IF_S" down 2>/dev/null || true
	ip netns del "$NS_S"
	ip netns del "$NS_C"
}

# wait_http URL waits (at most 20 s) until URL answers from the client namespace.
wait_http() {
	for _ in $(seq 200); do
		ip netns exec "$NS_C" busybox wget -q -O /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "storm.sh: $1 never answered" >&2
	return 1
}

# wait_log NAME TEXT waits (at most 20 s) until the server's log shows TEXT.
wait_log() {
	for _ in $(seq 200); do
		grep -q "$2" "$WORK/$1.log" 2>/dev/null && return 0
		sleep 0.1
	done
	echo "storm.sh: $1 did not log '$2':" >&2
	tail -20 "$WORK/$1.log" >&2
	return 1
}

# sys_cpu prints the machine's CPU ticks so far: busy (user, nice, system, irq, softirq) and
# softirq alone.
sys_cpu() {
	awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $8 }' /proc/stat
}

# server_cpu prints the CPU ticks of the server processes this script started, with the
# children they reaped.
server_cpu() {
	local pg t=0 v
	for pg in "${PGIDS[@]}"; do
		# Fields 14-17 of /proc/PID/stat (utime stime cutime cstime), after the ")" of comm.
		v=$(sed 's/.*) //' "/proc/$pg/stat" 2>/dev/null | awk '{ print $12 + $13 + $14 + $15 }') || v=0
		t=$((t + ${v:-0}))
	done
	echo "$t"
}

# udp_errs NAME prints how many UDP datagrams each namespace's kernel dropped during NAME's
# storm (/proc/net/snmp: RcvbufErrors, SndbufErrors, InErrors).
udp_errs() {
	local side
	for side in server client; do
		awk -v side="$side" -v name="$1" '$1 == "Udp:" && $2 ~ /^[0-9]/ { n++; for (i = 2; i <= NF; i++) v[n, i] = $i }
			END { printf "%s: %s kernel UDP drops: RcvbufErrors %d, SndbufErrors %d, InErrors %d\n", name, side,
				v[2, 6] - v[1, 6], v[2, 7] - v[1, 7], v[2, 4] - v[1, 4] }' \
			"$WORK/$1.snmp-$side-before" "$WORK/$1.snmp-$side-after"
	done
	# /proc/net/softnet_stat, one line per CPU, hex: packets processed, dropped (the CPU's
	# backlog full: net.core.netdev_max_backlog), squeezed. Whole machine, every namespace.
	python3 - "$1" "$WORK/$1.softnet-before" "$WORK/$1.softnet-after" <<'EOF'
import sys
def drops(f):
    return sum(int(l.split()[1], 16) for l in open(f) if l.strip())
print(f"{sys.argv[1]}: packets dropped by full per-CPU backlogs (softnet_stat, whole machine): {drops(sys.argv[3]) - drops(sys.argv[2])}")
EOF
	# A veth that cannot hand a packet to its peer (the backlog above full) counts it in its
	# tx dropped, and the sender's UDP stack counts it in SndbufErrors (ENOBUFS, reported to
	# the sender only with IP_RECVERR: its sendmsg succeeds): which side's packets were lost.
	python3 - "$1" "$WORK/$1".link-{server,client}-{before,after} <<'EOF'
import json, sys
def tx(f):
    return json.load(open(f))[0]["stats64"]["tx"]
for side, b, a in (("server", sys.argv[2], sys.argv[3]), ("client", sys.argv[4], sys.argv[5])):
    print(f"{sys.argv[1]}: {side} veth: sent {tx(a)['packets'] - tx(b)['packets']} packets, dropped {tx(a)['dropped'] - tx(b)['dropped']} (peer's backlog full)")
EOF
	# TCP (the HTTP downloads): segments the server resent, how many of them the client had
	# already (DSACK: spurious, e.g. reordered by the two CPUs' backlogs), and retransmission timeouts.
	python3 - "$1" "$WORK/$1".snmp-server-{before,after} "$WORK/$1".netstat-server-{before,after} <<'EOF2'
import sys
def load(f):
    ls, r = open(f).read().split("\n"), {}
    for i in range(0, len(ls) - 1, 2):
        for k, v in zip(ls[i].split()[1:], ls[i + 1].split()[1:]):
            r[ls[i].split()[0] + k] = int(v)
    return r
s0, s1, n0, n1 = map(load, sys.argv[2:6])
d = lambda a, b, k: a.get(k, 0) - b.get(k, 0)
print(f"{sys.argv[1]}: server TCP: sent {d(s1, s0, 'Tcp:OutSegs')} segments, resent {d(s1, s0, 'Tcp:RetransSegs')} "
      f"({d(n1, n0, 'TcpExt:TCPDSACKRecvSegs')} of them reported duplicate by the client), "
      f"{d(n1, n0, 'TcpExt:TCPTimeouts')} retransmission timeouts")
EOF2
	local n0 f0 n1 f1
	read -r n0 f0 <"$WORK/$1.neigh-before"
	read -r n1 f1 <"$WORK/$1.neigh-after"
	echo "$1: host IPv4 neighbour table: $n0 entries before, $n1 after, full $((f1 - f0)) times (new entries refused: replies to them dropped)"
	if [ -e "$WORK/$1.metrics" ]; then
		echo "$1: pxed $(grep -E '^pxed_dhcp_send_errors_total' "$WORK/$1.metrics" | tr '\n' ' ')"
	fi
}

# storm NAME runs the storm from the client namespace; its JSON report goes to $WORK/NAME.json
# and the CPU it took to $WORK/NAME.cpu.
storm() {
	log "$1: storm of $CLIENTS machines"
	local rc=0 perf_pid=
	local hz before srv0 after srv1
	MAC_PREFIX=02:62:$(printf %02x $((RANDOM % 256)))
	hz=$(getconf CLK_TCK)
	if [ "$PERF" -eq 1 ]; then
		perf record -a -g -F 499 -o "$OUT/$1.perf.data" >"$WORK/$1.perf.log" 2>&1 &
		perf_pid=$!
	fi
	cp /proc/net/softnet_stat "$WORK/$1.softnet-before"
	neigh_stat >"$WORK/$1.neigh-before"
	ip netns exec "$NS_S" cat /proc/net/snmp >"$WORK/$1.snmp-server-before"
	ip netns exec "$NS_C" cat /proc/net/snmp >"$WORK/$1.snmp-client-before"
	ip netns exec "$NS_S" cat /proc/net/netstat >"$WORK/$1.netstat-server-before"
	ip netns exec "$NS_C" cat /proc/net/netstat >"$WORK/$1.netstat-client-before"
	ip -n "$NS_S" -s -j link show dev "$IF_S" >"$WORK/$1.link-server-before"
	ip -n "$NS_C" -s -j link show dev "$IF_C" >"$WORK/$1.link-client-before"
	local trace_pid=
	if [ "$CPU_TRACE" -eq 1 ]; then
		python3 "$REPO/bench/cputrace.py" sample "$OUT/$1.cputrace" "${PGIDS[@]}" &
		trace_pid=$!
		sleep 1 # python's start (pyenv), and one second of the machine before the storm
	fi
	before=$(sys_cpu)
	srv0=$(server_cpu)
	echo "$EPOCHREALTIME" >"$WORK/$1.tracestart"
	timeout 240 ip netns exec "$NS_C" ${CLI_CPUS:+taskset -c "$CLI_CPUS"} "$WORK/pxed-storm" storm --interface "$IF_C" --clients "$CLIENTS" \
		--arch "$ARCH" --fetch $CHAIN $MACHINE_ADDRS --timeout-scale "$SCALE" --timeout 3m --mac-prefix "$MAC_PREFIX" \
		--json --machines-json "$WORK/$1.machines.json" >"$WORK/$1.json" 2>"$WORK/$1.progress" &
	local storm_pid=$! cpid= perf_pids=()
	if [ "$PERF_CLIENT" -eq 1 ]; then
		# The storm client's process (timeout's child after ip netns exec and taskset exec'd).
		for _ in $(seq 50); do
			cpid=$(pgrep -P "$storm_pid" | head -1) && [ -n "$cpid" ] && break
			sleep 0.02
		done
		if [ -n "$cpid" ]; then
			perf record -F 999 -g -p "$cpid" -o "$OUT/$1.client.perf.data" >"$WORK/$1.client.perf.log" 2>&1 &
			perf_pids+=($!)
			perf stat -e task-clock,context-switches,cpu-migrations,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_pwait \
				-p "$cpid" -o "$OUT/$1.client.perfstat" &
			perf_pids+=($!)
		fi
		perf stat -e task-clock,context-switches,cpu-migrations,syscalls:sys_enter_futex,syscalls:sys_enter_epoll_pwait \
			-p "${PGIDS[-1]}" -o "$OUT/$1.server.perfstat" &
		perf_pids+=($!)
	fi
	wait "$storm_pid" || rc=$?
	if [ -n "$trace_pid" ]; then
		kill "$trace_pid" 2>/dev/null || true
		wait "$trace_pid" 2>/dev/null || true
	fi
	local p
	for p in ${perf_pids[@]+"${perf_pids[@]}"}; do kill -INT "$p" 2>/dev/null || true; done
	for p in ${perf_pids[@]+"${perf_pids[@]}"}; do wait "$p" 2>/dev/null || true; done
	after=$(sys_cpu)
	srv1=$(server_cpu)
	cp /proc/net/softnet_stat "$WORK/$1.softnet-after"
	neigh_stat >"$WORK/$1.neigh-after"
	ip netns exec "$NS_S" cat /proc/net/snmp >"$WORK/$1.snmp-server-after"
	ip netns exec "$NS_C" cat /proc/net/snmp >"$WORK/$1.snmp-client-after"
	ip netns exec "$NS_S" cat /proc/net/netstat >"$WORK/$1.netstat-server-after"
	ip netns exec "$NS_C" cat /proc/net/netstat >"$WORK/$1.netstat-client-after"
	ip -n "$NS_S" -s -j link show dev "$IF_S" >"$WORK/$1.link-server-after"
	ip -n "$NS_C" -s -j link show dev "$IF_C" >"$WORK/$1.link-client-after"
	if [ "$1" = pxed ]; then
		ip netns exec "$NS_C" busybox wget -q -O "$WORK/$1.metrics" "http://$SRV:8080/metrics" 2>/dev/null || true
	fi
	# The server's neighbour table: an entry for a machine's address with a simulated MAC
	# (MAC_PREFIX) means the server's packets to it went to a MAC nobody receives on.
	ip -n "$NS_S" neigh show dev "$IF_S" >"$WORK/$1.neigh" 2>&1 || true
	if [ -n "$perf_pid" ]; then
		kill -INT "$perf_pid" 2>/dev/null || true
		wait "$perf_pid" 2>/dev/null || true
	fi
	set -- "$1" $before $after
	echo "{\"busy\": $(((${4} - ${2}) * 100 / hz)), \"softirq\": $(((${5} - ${3}) * 100 / hz)), \"server\": $(((srv1 - srv0) * 100 / hz))}" >"$WORK/$1.cpu"
	[ -z "$OUT" ] || cp "$WORK/$1.json" "$WORK/$1.cpu" "$WORK/$1.progress" "$WORK/$1.log" "$WORK/$1.neigh" \
		"$WORK/$1.machines.json" "$WORK/$1".snmp-* "$WORK/$1".netstat-* "$WORK/$1".link-* "$WORK/$1.tracestart" "$OUT/"
	[ -z "$OUT" ] || [ ! -e "$WORK/$1.metrics" ] || cp "$WORK/$1.metrics" "$OUT/"
	udp_errs "$1" >&2
	tail -c 300 "$WORK/$1.progress" | tr '\r' '\n' | tail -1 >&2
	if [ "$CPU_TRACE" -eq 1 ]; then
		python3 "$REPO/bench/cputrace.py" show "$OUT/$1.cputrace" "$OUT/$1.machines.json" | grep -E ' stage \(' >&2 || true
	fi
	log "$1: server neighbour entries: $(grep -c lladdr "$WORK/$1.neigh" || true), with a simulated machine's MAC: $(grep -ci "lladdr $MAC_PREFIX" "$WORK/$1.neigh" || true)"
	return $rc
}

if [ -n "${PXED_BIN:-}" ]; then
	cp "$PXED_BIN" "$WORK/pxed"
else
	log "building pxed"
	(cd "$REPO" && go build -o "$WORK/pxed" ./cmd/pxed)
fi
cp "${STORM_BIN:-$WORK/pxed}" "$WORK/pxed-storm"
read -ra PXED_ARGS <<<"${PXED_ARGS:-}"
mkdir -p "$WORK/boot" "$WORK/ipxe" "$WORK/http" "$WORK/data"
head -c $((NBP_MIB << 20)) /dev/urandom >"$WORK/ipxe/undionly.kpxe"
cp "$WORK/ipxe/undionly.kpxe" "$WORK/ipxe/snponly.efi"
head -c $((HTTP_MIB << 20)) /dev/urandom >"$WORK/http/vmlinuz"
printf '#!ipxe\nkernel http://%s:8080/vmlinuz console=ttyS0\nboot\n' "$SRV" >"$WORK/http/boot.ipxe"

read -r NEIGH_BASE _ < <(neigh_stat)
RESULT=0
if [ -n "$OUT" ]; then
	mkdir -p "$OUT"
	rm -f "$OUT/pxed.json" "$OUT/dnsmasq.json" "$OUT/pxed.cpu" "$OUT/dnsmasq.cpu"
fi
runs() { case ",$SERVERS," in *",$1,"*) return 0 ;; esac; return 1; }

# --- pxed ---
if runs pxed; then
net_up
start pxed "$WORK/pxed" boot --interface "$IF_S" --dhcp-range 198.18.1.0-198.18.9.255 \
	--kernel "$WORK/http/vmlinuz" --ipxe-dir "$WORK/ipxe" --data-dir "$WORK/data" \
	--tftp-addr "$SRV:69" --http-addr "$SRV:8080" --log-level warn --dhcp-probe-timeout off \
	${PXED_ARGS[@]+"${PXED_ARGS[@]}"}
wait_http "http://$SRV:8080/healthz"
storm pxed || RESULT=1
stop_all
net_down
fi

# --- dnsmasq + busybox httpd ---
if runs dnsmasq; then
net_up
start httpd busybox httpd -f -p "$SRV:8080" -h "$WORK/http"
start dnsmasq dnsmasq -k --conf-file=/dev/null --port=0 --user=root --group=root \
	--interface="$IF_S" --bind-interfaces --pid-file="$WORK/dnsmasq.pid" \
	--dhcp-leasefile="$WORK/dnsmasq.leases" --log-facility=- --no-ping \
	--dhcp-range=198.18.1.0,198.18.9.255,255.254.0.0,1h --dhcp-lease-max=10000 \
	--enable-tftp --tftp-root="$WORK/ipxe" --tftp-max=1000 \
	--dhcp-match=set:efi,option:client-arch,7 --dhcp-userclass=set:ipxe,iPXE \
	--dhcp-boot=tag:!ipxe,tag:efi,snponly.efi --dhcp-boot=tag:!ipxe,tag:!efi,undionly.kpxe \
	--dhcp-boot="tag:ipxe,http://$SRV:8080/boot.ipxe"
wait_log dnsmasq "DHCP, "
wait_http "http://$SRV:8080/boot.ipxe"
storm dnsmasq || RESULT=1
stop_all
net_down
fi

# --- report ---
report() {
	python3 - "$WORK" "$SERVERS" <<'EOF'
import json, os, sys
ncpu = os.cpu_count()
reps, cpus = {}, {}
for name in sys.argv[2].split(","):
    try:
        reps[name] = json.load(open(f"{sys.argv[1]}/{name}.json"))
        cpus[name] = json.load(open(f"{sys.argv[1]}/{name}.cpu"))
    except Exception as e:
        print(f"{name}: no report ({e})")
for name, r in reps.items():
    print(f"\n== {name}: booted {r['booted']}/{r['clients']}, failed {r['failed']}, "
          f"time to all booted {r['seconds']:.2f} s, {r['bytes']/1e6:.0f} MB at {r['mb_per_s']:.0f} MB/s")
    print(f"   {'stage':16} {'count':>6} {'p50':>9} {'p95':>9} {'p99':>9} {'max':>9}")
    for s in r["stages"]:
        f = lambda ns: f"{ns/1e6:.0f}ms"
        print(f"   {s['stage']:16} {s['count']:6} {f(s['p50_ns']):>9} {f(s['p95_ns']):>9} {f(s['p99_ns']):>9} {f(s['max_ns']):>9}")
    print(f"   retries {r['retries']}; failures {r['failures'] or 'none'}")
    print(f"   client raw socket: {r.get('socket')}")
    c = cpus.get(name)
    if c:
        print(f"   CPU-seconds: machine busy {c['busy']/100:.1f} (softirq {c['softirq']/100:.1f}) of {ncpu*r['seconds']:.1f} on {ncpu} cores; "
              f"server processes {c['server']/100:.1f}{' (dnsmasq; busybox httpd children not counted)' if name == 'dnsmasq' else ''}; storm client {r.get('cpu_seconds', 0):.1f}; "
              f"rest {c['busy']/100 - c['server']/100 - r.get('cpu_seconds', 0):.1f} (kernel threads{', busybox httpd' if name == 'dnsmasq' else ''} and anything else running: compare runs only when it is small)")
    for k, v in (r.get("examples") or {}).items():
        print(f"     {k}: {v}")
if len(reps) == 2:
    p, d = reps["pxed"], reps["dnsmasq"]
    ok = p["failed"] == 0 and d["failed"] == 0
    print(f"\ntime to all booted: pxed {p['seconds']:.2f} s, dnsmasq {d['seconds']:.2f} s: "
          f"pxed is {d['seconds']/p['seconds']:.2f}x faster (target >= 3x)" + ("" if ok else " [some machines failed]"))
EOF
}
printf '\nstorm bench: %d machines (%s), NBP %d MiB over TFTP, %d MiB kernel over HTTP, DHCP timeouts x%s\n' \
	"$CLIENTS" "$ARCH" "$NBP_MIB" "$HTTP_MIB" "$SCALE"
report
exit $RESULT
