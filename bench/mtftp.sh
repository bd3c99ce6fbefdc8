#!/usr/bin/env bash
# bench/mtftp.sh — many clients fetching one file: pxed multicast (RFC 2090)
# vs pxed unicast (windowsize 16) vs atftpd's multicast (RFC 2090), in one run,
# in network namespaces only (198.18.0.0/15, RFC 2544 benchmarking space).
#
#   sudo bench/mtftp.sh               # CLIENTS="50 200" SIZE_MB=8 by default
#
# A server namespace holds a bridge (198.18.0.1/15, multicast snooping off);
# each client is its own namespace on a veth (atftp binds the multicast port,
# one per namespace). For each client count and server it starts every atftp
# at once and prints the time until the last one is done, the bytes the
# server's bridge interface sent (tx_bytes: each multicast datagram counts
# once, however many clients hear it) against the file size, failures and
# whether every client got identical bytes (sha256), and the datagrams the clients'
# kernels dropped for a full socket queue (Udp RcvbufErrors summed over the client
# namespaces: what a receiver missed and must be sent again) and the server's CPU
# seconds (srv CPU). The clients are started
# first and wait for a go signal, so all begin within milliseconds. All use blksize
# 1428; unicast adds windowsize 16. LINK=1gbit (any tc rate) shapes what the
# server sends (a tbf qdisc on its bridge, deep enough that nothing is dropped
# there): the namespaces' "network" is otherwise a memory copy, far faster than
# any wire, which makes unicast look cheaper than it is on a real link.
# MODES picks the runs (default "mc mc-w16 uni-w16 atftpd"); PXED_BIN=FILE uses
# a prebuilt internal/tftp/cmd/tftpd (to alternate two builds in one period).
# Bounded: every atftp gets XFER_TIMEOUT
# seconds. Takes flock /tmp/pxed-bench.lock (shared 2-core machine); kills
# only the process groups it started and deletes its namespaces.
set -euo pipefail

CLIENTS=${CLIENTS:-"50 200"}
SIZE_MB=${SIZE_MB:-8}
XFER_TIMEOUT=${XFER_TIMEOUT:-120}
LINK=${LINK:-}
MODES=${MODES:-"mc mc-w16 uni-w16 atftpd"}
ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CACHE:-$ROOT_DIR/.cache/bench-debs}
SRV=198.18.0.1

[[ $(id -u) == 0 ]] || { echo "mtftp.sh: run as root (namespaces)" >&2; exit 2; }
for b in atftp go ip flock dpkg-deb apt-get sha256sum; do
	command -v "$b" >/dev/null || { echo "mtftp.sh: $b not found (apt-get install atftp iproute2)" >&2; exit 2; }
done
exec 9>/tmp/pxed-bench.lock
flock 9

TAG=pxb$$
WORK=$(mktemp -d /tmp/pxed-bench-mtftp.XXXXXX)
PIDS=()
MAXC=0
for n in $CLIENTS; do ((n > MAXC)) && MAXC=$n; done
cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
	sleep 0.2
	for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
	for i in $(seq 1 "$MAXC"); do ip netns del "$TAG-c$i" 2>/dev/null || true; done
	ip netns del "$TAG-s" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- binaries: atftpd unpacked from its Debian package, never installed ---------
mkdir -p "$CACHE" "$WORK/pkg"
(cd "$CACHE" && for p in atftpd libwrap0; do
	ls "$p"_*.deb >/dev/null 2>&1 || apt-get download "$p" >/dev/null 2>&1 || { echo "mtftp.sh: apt-get download $p failed" >&2; exit 1; }
done)
for p in atftpd libwrap0; do dpkg-deb -x "$(ls "$CACHE"/"$p"_*.deb | head -1)" "$WORK/pkg/$p"; done
export LD_LIBRARY_PATH="$WORK/pkg/libwrap0/usr/lib/x86_64-linux-gnu:$WORK/pkg/libwrap0/lib/x86_64-linux-gnu"
ATFTPD="$WORK/pkg/atftpd/usr/sbin/atftpd"
PXED=${PXED_BIN:-$WORK/pxed-tftpd}
[[ -n ${PXED_BIN:-} ]] || (cd "$ROOT_DIR" && go build -o "$PXED" ./internal/tftp/cmd/tftpd)

mkdir -p "$WORK/root" "$WORK/out"
head -c $((SIZE_MB << 20)) /dev/urandom >"$WORK/root/f"
WANT=$(sha256sum <"$WORK/root/f" | cut -d' ' -f1)
SIZE=$(stat -c %s "$WORK/root/f")
chmod -R a+rX "$WORK"

# --- namespaces -------------------------------------------------------------------
ip netns add "$TAG-s"
ip -n "$TAG-s" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
ip -n "$TAG-s" addr add $SRV/15 dev br0
ip -n "$TAG-s" link set br0 up
ip -n "$TAG-s" link set lo up
ip -n "$TAG-s" route add 224.0.0.0/4 dev br0
if [[ -n $LINK ]]; then
	# A queue of 64 MiB: the senders' socket buffers fill before it does, so
	# the shaper slows them down instead of dropping what they send.
	ip netns exec "$TAG-s" tc qdisc add dev br0 root tbf rate "$LINK" burst 256kb limit 64mb
fi
for i in $(seq 1 "$MAXC"); do
	ns="$TAG-c$i"
	ip netns add "$ns"
	ip -n "$TAG-s" link add "v$i" type veth peer name eth0 netns "$ns"
	ip -n "$TAG-s" link set "v$i" master br0 up
	ip -n "$ns" addr add "198.18.$((1 + i / 250)).$((1 + i % 250))/15" dev eth0
	ip -n "$ns" link set eth0 up
	ip -n "$ns" route add 224.0.0.0/4 dev eth0
done

start() { # start NAME CMD...: in the server namespace, own process group
	setsid ip netns exec "$TAG-s" "${@:2}" >"$WORK/$1.log" 2>&1 &
	PIDS+=($!)
	sleep 0.5
}
# cpu: the running server's CPU seconds so far (setsid and ip netns exec both
# exec, so the PID started is the server's).
cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/${PIDS[-1]}/stat"; }
stop() {
	local p=${PIDS[-1]}
	kill -TERM -- "-$p" 2>/dev/null || true
	wait "$p" 2>/dev/null || true
	unset 'PIDS[-1]'
}
txbytes() { ip netns exec "$TAG-s" cat /sys/class/net/br0/statistics/tx_bytes; }
# rcvdrops N: UDP datagrams the first N clients' kernels dropped because the
# receiving socket's queue was full (Udp RcvbufErrors, summed over their
# namespaces): blocks a receiver missed and must get again.
rcvdrops() {
	local sum=0 i v
	for i in $(seq 1 "$1"); do
		v=$(ip netns exec "$TAG-c$i" awk '/^Udp: [0-9]/{print $6; exit}' /proc/net/snmp)
		sum=$((sum + ${v:-0}))
	done
	echo "$sum"
}

# run LABEL N OPTS...: N atftp clients at once; prints one table row.
run() {
	local label=$1 n=$2
	shift 2
	rm -f "$WORK"/out/* "$WORK/go"
	local tx0 t0 t1 tx1 c0 c1 fail=0 same=yes
	local cp=()
	# Every client waits for the go file, so they start together (launching
	# 200 `ip netns exec` one by one takes seconds: late joiners, not the
	# protocol, would then dominate). Bounded: give up after XFER_TIMEOUT.
	for i in $(seq 1 "$n"); do
		timeout "$XFER_TIMEOUT" ip netns exec "$TAG-c$i" sh -c 'touch "$1.ready"; while [ ! -e "$2" ]; do sleep 0.005; done; shift 2; exec atftp "$@"' \
			sh "$WORK/out/$i" "$WORK/go" "$@" -g -r f -l "$WORK/out/$i" $SRV 69 >"$WORK/out/$i.log" 2>&1 &
		cp+=($!)
	done
	for _ in $(seq 1 $((XFER_TIMEOUT * 10))); do
		[[ $(ls "$WORK"/out/*.ready 2>/dev/null | wc -l) -ge $n ]] && break
		sleep 0.1
	done
	local d0
	d0=$(rcvdrops "$n")
	tx0=$(txbytes)
	c0=$(cpu)
	t0=$(date +%s.%N)
	touch "$WORK/go"
	for p in "${cp[@]}"; do wait "$p" || fail=$((fail + 1)); done
	t1=$(date +%s.%N)
	tx1=$(txbytes)
	c1=$(cpu)
	for i in $(seq 1 "$n"); do
		[[ -f "$WORK/out/$i" && $(sha256sum <"$WORK/out/$i" | cut -d' ' -f1) == "$WANT" ]] || same=no
	done
	printf "%-28s %7d %10.2f %14d %9.2f %8d %9s %11d %7.2f\n" "$label" "$n" "$(echo "$t1 - $t0" | bc)" "$((tx1 - tx0))" \
		"$(echo "scale=2; ($tx1 - $tx0) / $SIZE" | bc)" "$fail" "$same" "$(($(rcvdrops "$n") - d0))" "$(echo "$c1 - $c0" | bc)"
}

echo "# bench/mtftp.sh: file ${SIZE_MB} MiB ($SIZE bytes), clients: $CLIENTS, link ${LINK:-unshaped}, $(nproc) cores, $(date -u +%FT%TZ)"
printf "%-28s %7s %10s %14s %9s %8s %9s %11s %7s\n" "server" "clients" "all done s" "server tx B" "tx/file" "failed" "identical" "rcvq drops" "srv CPU"
for n in $CLIENTS; do
	start pxed "$PXED" -addr $SRV:69 -root "$WORK/root" -multicast 239.255.70.0/24 -max-windowsize 16
	for m in $MODES; do
		case $m in
		mc) run "pxed multicast (RFC 2090)" "$n" --option multicast --option "blksize 1428" ;;
		mc-w16) run "pxed multicast windowsize 16" "$n" --option multicast --option "blksize 1428" --option "windowsize 16" ;;
		uni-w16) run "pxed unicast windowsize 16" "$n" --option "blksize 1428" --option "windowsize 16" ;;
		esac
	done
	stop
	[[ " $MODES " == *" atftpd "* ]] || continue
	start atftpd "$ATFTPD" --daemon --no-fork --user root --group root --bind-address $SRV --port 69 \
		--mcast-addr 239.255.71.0-255 --mcast-port 1758 --mcast-ttl 1 --logfile "$WORK/atftpd.syslog" "$WORK/root"
	run "atftpd multicast (RFC 2090)" "$n" --option multicast --option "blksize 1428"
	stop
done
if [[ -n $LINK ]]; then
	echo "# shaper ($LINK): $(ip netns exec "$TAG-s" tc -s qdisc show dev br0 | grep -o "dropped [0-9]*" | head -1 | cut -d" " -f2) datagrams dropped by the shaper in all runs"
fi
