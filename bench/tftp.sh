#!/usr/bin/env bash
# bench/tftp.sh — pxed's TFTP server against tftpd-hpa, dnsmasq and atftpd, on
# loopback, one after another in one run, with the atftp client.
#
#   sudo bench/tftp.sh            # REPS=3 SIZE_MB=64 CLIENTS=500 by default
#   sudo PXED_FLAGS=-no-gso bench/tftp.sh   # pxed without UDP GSO (sendmmsg)
#   sudo ONLY=conc CONC=pxed,atftpd bench/tftp.sh   # only the concurrency part, only these runs
#   sudo ONLY=conc PXED_BIN=/tmp/old-tftpd bench/tftp.sh  # a prebuilt tftpd (compare two builds)
#
# ONLY=conc skips the single-transfer part, ONLY=single the concurrent one. CONC lists the concurrency runs
# (comma-separated, default all): pxed, pxed-w16, tftpd-hpa, dnsmasq, atftpd,
# atftpd-w16. SINGLE lists the servers of the single-transfer part (default
# pxed,tftpd-hpa,dnsmasq,atftpd), SET_FILTER a regular expression picking its
# option sets (e.g. windowsize). PXED_BIN uses that tftpd binary instead of building this tree's.
# PXED_ENV (e.g. GOMAXPROCS=1) is put in pxed's environment.
#
# For each server and option set (blksize 512, 1468, 65464 lockstep; windowsize
# 4, 16, 64 at blksize 1468 where the server supports it) it prints MB/s (best
# of REPS), server CPU seconds per GiB and pxed's ratio to each, then the UDP receive-buffer drops
# (/proc/net/snmp RcvbufErrors) during each server's runs and the DATA packets
# pxed sent again after a timeout. Then CLIENTS concurrent atftp
# downloads of a 1 MiB file per server: aggregate MB/s, failures, peak RSS,
# server CPU seconds per GiB.
#
# Server CPU is exact: each server runs in its own cpuacct cgroup (cgroup v1,
# /sys/fs/cgroup/cpuacct) that this script creates and removes, and
# cpuacct.usage counts every process and thread of it in nanoseconds, forked
# children (tftpd-hpa's) and exited threads (atftpd's) included. Without a
# writable cpuacct hierarchy it falls back to utime+stime+cutime+cstime from
# /proc/PID/stat, which misses tftpd-hpa's live children (its CPU is then n/a).
#
# tftpd-hpa and atftpd conflict as Debian packages, so both are fetched with
# `apt-get download` into a cache and unpacked with dpkg-deb -x: no package is
# installed and no system service is started. dnsmasq (installed) runs with
# DNS and DHCP off, TFTP only, on 127.0.0.69:69 (it has no TFTP port option).
# Needs root (tftpd-hpa chroots; dnsmasq binds port 69). Kills only the PIDs
# it started (by process group) and removes its temp dir and cgroups.
set -euo pipefail

REPS=${REPS:-3}
SIZE_MB=${SIZE_MB:-64}
CLIENTS=${CLIENTS:-500}
BASE_PORT=${BASE_PORT:-16900}
ROOT_DIR=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CACHE:-$ROOT_DIR/.cache/bench-debs}
XFER_TIMEOUT=${XFER_TIMEOUT:-300}
read -ra PXED_FLAGS <<<"${PXED_FLAGS:-}" # extra flags for pxed's tftpd (see go run ./internal/tftp/cmd/tftpd -h)
read -ra PXED_ENV <<<"${PXED_ENV:-}"     # extra environment for pxed's tftpd (NAME=VALUE ...)
ONLY=${ONLY:-}
# SRV_CPUS / CLI_CPUS (e.g. 0 and 1): pin every server, and the atftp
# clients, to those CPUs with taskset ("the server has its own core").
# A single lockstep transfer costs every server 3-4x more per block when
# the client runs on another CPU, and unpinned the kernel picks the placement
# per server: compare single transfers pinned, SRV_CPUS=0 CLI_CPUS=0 (one CPU)
# or SRV_CPUS=0 CLI_CPUS=1 (two).
SRV_PIN=() CLI_PIN=()
[[ -n ${SRV_CPUS:-} ]] && SRV_PIN=(taskset -c "$SRV_CPUS")
[[ -n ${CLI_CPUS:-} ]] && CLI_PIN=(taskset -c "$CLI_CPUS")
CONC=${CONC:-pxed,pxed-w16,tftpd-hpa,dnsmasq,atftpd,atftpd-w16}

[[ $(id -u) == 0 ]] || { echo "tftp.sh: run as root (tftpd-hpa chroots, dnsmasq binds port 69)" >&2; exit 2; }
for b in atftp go dnsmasq dpkg-deb apt-get; do
	command -v "$b" >/dev/null || { echo "tftp.sh: $b not found (apt-get install atftp dnsmasq golang)" >&2; exit 2; }
done

WORK=$(mktemp -d /tmp/pxed-bench-tftp.XXXXXX)
PIDS=()
# CG: this run's cpuacct cgroup (one child per server), empty without one.
CG=
if [[ -w /sys/fs/cgroup/cpuacct/cgroup.procs ]] && mkdir "/sys/fs/cgroup/cpuacct/pxed-bench-tftp.$$" 2>/dev/null; then
	CG=/sys/fs/cgroup/cpuacct/pxed-bench-tftp.$$
else
	echo "tftp.sh: no cpuacct cgroup (cgroup v1): server CPU from /proc, tftpd-hpa's n/a" >&2
fi
cleanup() {
	for p in "${PIDS[@]}"; do kill -TERM -- "-$p" 2>/dev/null || true; done
	sleep 0.2
	for p in "${PIDS[@]}"; do kill -KILL -- "-$p" 2>/dev/null || true; done
	if [[ -n $CG ]]; then
		for d in "$CG"/*/; do
			for _ in $(seq 50); do rmdir "$d" 2>/dev/null && break; sleep 0.1; done
		done
		rmdir "$CG" 2>/dev/null || echo "tftp.sh: could not remove cgroup $CG" >&2
	fi
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- binaries -----------------------------------------------------------------
mkdir -p "$CACHE" "$WORK/pkg"
(cd "$CACHE" && for p in tftpd-hpa atftpd libwrap0; do
	ls "$p"_*.deb >/dev/null 2>&1 || apt-get download "$p" >/dev/null 2>&1 || { echo "tftp.sh: apt-get download $p failed" >&2; exit 1; }
done)
# One directory per package: atftpd also ships usr/sbin/in.tftpd (a symlink).
for p in tftpd-hpa atftpd libwrap0; do dpkg-deb -x "$(ls "$CACHE"/"$p"_*.deb | head -1)" "$WORK/pkg/$p"; done
export LD_LIBRARY_PATH="$WORK/pkg/libwrap0/usr/lib/x86_64-linux-gnu:$WORK/pkg/libwrap0/lib/x86_64-linux-gnu"
HPA="$WORK/pkg/tftpd-hpa/usr/sbin/in.tftpd"
ATFTPD="$WORK/pkg/atftpd/usr/sbin/atftpd"
PXED="$WORK/pxed-tftpd"
if [[ -n ${PXED_BIN:-} ]]; then
	cp "$PXED_BIN" "$PXED"
else
	(cd "$ROOT_DIR" && go build -o "$PXED" ./internal/tftp/cmd/tftpd)
fi

# --- files ----------------------------------------------------------------------
SRV_ROOT="$WORK/root"
mkdir -p "$SRV_ROOT" "$WORK/out"
chmod 777 "$SRV_ROOT" # atftpd insists on a world-writable root
head -c $((SIZE_MB << 20)) /dev/urandom >"$SRV_ROOT/big"
head -c $((1 << 20)) /dev/urandom >"$SRV_ROOT/small"
head -c 100 /dev/urandom >"$SRV_ROOT/ping"
chmod 644 "$SRV_ROOT"/*
CLK=$(getconf CLK_TCK)

# incg NAME COMMAND...: runs COMMAND (exec, same PID) in server NAME's cgroup.
incg() {
	local name=$1
	shift
	if [[ -n $CG ]]; then
		mkdir -p "$CG/$name"
		echo "$BASHPID" >"$CG/$name/cgroup.procs"
	fi
	exec ${SRV_PIN[@]+"${SRV_PIN[@]}"} "$@"
}

# --- servers --------------------------------------------------------------------
# start NAME: starts the server, sets SPID, HOST, PORT; waits until it answers.
start() {
	local name=$1
	HOST=127.0.0.1
	case $name in
	pxed)
		PORT=$((BASE_PORT + 1))
		incg "$name" setsid env ${PXED_ENV[@]+"${PXED_ENV[@]}"} "$PXED" -addr "$HOST:$PORT" -root "$SRV_ROOT" ${PXED_FLAGS[@]+"${PXED_FLAGS[@]}"} 2>"$WORK/$name.log" &
		;;
	tftpd-hpa)
		PORT=$((BASE_PORT + 2))
		incg "$name" setsid "$HPA" --foreground -a "$HOST:$PORT" -u root -s "$SRV_ROOT" 2>"$WORK/$name.log" &
		;;
	dnsmasq)
		HOST=127.0.0.69 PORT=69
		incg "$name" setsid dnsmasq -k --conf-file=/dev/null --port=0 --enable-tftp --tftp-root="$SRV_ROOT" \
			--listen-address=$HOST --bind-interfaces --tftp-max=$((CLIENTS * 2)) --user=root \
			--pid-file="$WORK/dnsmasq.pid" --log-facility="$WORK/$name.log" --quiet-tftp &
		;;
	atftpd)
		PORT=$((BASE_PORT + 4))
		incg "$name" setsid "$ATFTPD" --daemon --no-fork --port "$PORT" --bind-address "$HOST" --user root --group root \
			--maxthread $((CLIENTS * 2)) --logfile "$WORK/$name.log" "$SRV_ROOT" &
		;;
	esac
	SPID=$!
	PIDS+=("$SPID")
	for _ in $(seq 20); do
		if timeout 2 atftp -g -r ping -l "$WORK/out/ping" "$HOST" "$PORT" >/dev/null 2>&1 && cmp -s "$WORK/out/ping" "$SRV_ROOT/ping"; then
			return 0
		fi
		sleep 0.1
	done
	echo "tftp.sh: $name did not answer on $HOST:$PORT; log:" >&2
	cat "$WORK/$name.log" >&2 || true
	return 1
}

stop() {
	kill -TERM -- "-$SPID" 2>/dev/null || true
	for _ in $(seq 50); do kill -0 "$SPID" 2>/dev/null || break; sleep 0.1; done
	kill -KILL -- "-$SPID" 2>/dev/null || true
	wait "$SPID" 2>/dev/null || true
}

# rcvbuf_errors: UDP datagrams dropped for a full receive buffer, system-wide.
rcvbuf_errors() { awk '/^Udp:/ { if (h) print $6; else h = 1 }' /proc/net/snmp; }

# resent: DATA packets pxed sent again after a timeout (tftpd prints it at exit).
resent() { grep -o 'resent=[0-9]*' "$WORK/pxed.log" 2>/dev/null | tail -1 | cut -d= -f2; }

# cpu_ns NAME: the CPU nanoseconds server NAME (process SPID) has used:
# its cgroup's cpuacct.usage, or without one utime+stime+cutime+cstime of
# SPID (children reaped into cutime only).
cpu_ns() {
	if [[ -n $CG ]]; then
		cat "$CG/$1/cpuacct.usage"
		return
	fi
	local s
	s=$(cat "/proc/$SPID/stat")
	s=${s##*) }
	awk -v clk="$CLK" '{printf "%.0f\n", ($12+$13+$14+$15)*1e9/clk}' <<<"$s"
}

# cpu_per_gib NS BYTES: CPU seconds per GiB, n/a for tftpd-hpa without a cgroup.
cpu_per_gib() {
	if [[ -z $CG && $srv == tftpd-hpa ]]; then
		echo n/a
		return
	fi
	awk -v t="$1" -v n="$2" 'BEGIN{printf "%.2f", (t/1e9)/(n/1073741824)}'
}

# quiesce: wait (bounded) until the server has no child processes left.
quiesce() {
	for _ in $(seq 100); do
		[[ -z $(pgrep -P "$SPID" 2>/dev/null) ]] && return 0
		sleep 0.05
	done
}

supports_window() { [[ $1 == pxed || $1 == atftpd ]]; }

# --- single-transfer throughput -------------------------------------------------
SETS=("blksize 512" "blksize 1468" "blksize 65464" "blksize 1468|windowsize 4" "blksize 1468|windowsize 16" "blksize 1468|windowsize 64")
IFS=, read -ra SERVERS <<<"${SINGLE:-pxed,tftpd-hpa,dnsmasq,atftpd}"
declare -A MBS CPU DROPS
BYTES=$((SIZE_MB << 20))

for srv in "${SERVERS[@]}"; do
	[[ $ONLY == conc ]] && break
	start "$srv"
	drops0=$(rcvbuf_errors)
	for set in "${SETS[@]}"; do
		[[ $set =~ ${SET_FILTER:-.} ]] || continue
		if [[ $set == *windowsize* ]] && ! supports_window "$srv"; then
			MBS[$srv,$set]=n/a CPU[$srv,$set]=n/a
			continue
		fi
		opts=()
		IFS='|' read -ra parts <<<"$set"
		for p in "${parts[@]}"; do opts+=(--option "$p"); done
		opts+=(--option "tsize 0")
		best=0 ns=0 ok=1
		for _ in $(seq "$REPS"); do
			rm -f "$WORK/out/big"
			quiesce
			c0=$(cpu_ns "$srv")
			t0=$(date +%s%N)
			if ! timeout "$XFER_TIMEOUT" ${CLI_PIN[@]+"${CLI_PIN[@]}"} atftp -g -r big -l "$WORK/out/big" "${opts[@]}" "$HOST" "$PORT" >/dev/null 2>&1 ||
				! cmp -s "$WORK/out/big" "$SRV_ROOT/big"; then
				ok=0
				break
			fi
			t1=$(date +%s%N)
			quiesce
			c1=$(cpu_ns "$srv")
			ns=$((ns + c1 - c0))
			best=$(awk -v b="$best" -v n="$BYTES" -v ns=$((t1 - t0)) 'BEGIN{m=n/1e6/(ns/1e9); print (m>b)?m:b}')
		done
		if ((ok)); then
			MBS[$srv,$set]=$(printf '%.1f' "$best")
			CPU[$srv,$set]=$(cpu_per_gib "$ns" $((BYTES * REPS)))
		else
			MBS[$srv,$set]=FAIL CPU[$srv,$set]=FAIL
		fi
		printf '  %-10s %-26s %8s MB/s %8s CPU-s/GiB\n' "$srv" "${set//|/ }" "${MBS[$srv,$set]}" "${CPU[$srv,$set]}" >&2
	done
	DROPS[$srv]=$(($(rcvbuf_errors) - drops0))
	stop
	if [[ $srv == pxed ]]; then PXED_RESENT=$(resent); fi
done

ratio() { # pxed/other for MB/s
	awk -v a="$1" -v b="$2" 'BEGIN{ if (a+0>0 && b+0>0) printf "%.2fx", a/b; else print "-" }'
}

if [[ $ONLY != conc ]]; then
echo
echo "== single transfer, ${SIZE_MB} MiB, atftp client, loopback; best of $REPS; CPU = server CPU-s per GiB =="
if [[ -n $CG ]]; then
	echo "   (CPU: the server's cpuacct cgroup, children and threads included)"
else
	echo "   (CPU: utime+stime+cutime+cstime from /proc; tftpd-hpa's children not seen: n/a)"
fi
printf '%-28s' "option set"
for srv in "${SERVERS[@]}"; do printf '%-22s' "$srv MB/s (CPU)"; done
printf '%s\n' "pxed ratio vs hpa/dnsmasq/atftpd"
for set in "${SETS[@]}"; do
	[[ $set =~ ${SET_FILTER:-.} ]] || continue
	printf '%-28s' "${set//|/ }"
	for srv in "${SERVERS[@]}"; do printf '%-22s' "${MBS[$srv,$set]:--} (${CPU[$srv,$set]:--})"; done
	p=${MBS[pxed,$set]:-}
	printf '%s / %s / %s\n' "$(ratio "$p" "${MBS[tftpd-hpa,$set]:-}")" "$(ratio "$p" "${MBS[dnsmasq,$set]:-}")" "$(ratio "$p" "${MBS[atftpd,$set]:-}")"
done
fastest_lock=0
for srv in tftpd-hpa dnsmasq atftpd; do
	v=${MBS[$srv,blksize 1468]:-}
	[[ $v =~ ^[0-9.]+$ ]] && fastest_lock=$(awk -v a="$v" -v b="$fastest_lock" 'BEGIN{print (a>b)?a:b}')
done
printf 'UDP RcvbufErrors during the runs:'
for srv in "${SERVERS[@]}"; do printf ' %s %s' "$srv" "${DROPS[$srv]}"; done
printf '; DATA packets pxed resent after a timeout: %s\n' "${PXED_RESENT:-?}"
echo "pxed windowsize 16 @1468 vs fastest lockstep reference @1468: $(ratio "${MBS[pxed,blksize 1468|windowsize 16]:-}" "$fastest_lock") (target >= 1.8x)"
fi

# --- concurrency ------------------------------------------------------------------
[[ $ONLY == single ]] && exit 0
echo
echo "== $CLIENTS concurrent atftp clients, 1 MiB each, blksize 1468 =="
printf '%-10s %-14s %10s %9s %12s %8s %7s %9s %9s\n' server options "agg MB/s" failures "peak RSS" drops resent CPU-s/GiB ctxsw/blk
conc() { # server, extra option
	local srv=$1 extra=$2 label=lockstep
	start "$srv"
	opts=(--option "blksize 1468" --option "tsize 0")
	if [[ -n $extra ]]; then opts+=(--option "$extra"); label=${extra// /=}; fi
	rm -rf "$WORK/conc" && mkdir -p "$WORK/conc"
	drops0=$(rcvbuf_errors)
	c0=$(cpu_ns "$srv")
	t0=$(date +%s%N)
	cpids=()
	for i in $(seq "$CLIENTS"); do
		(timeout "$XFER_TIMEOUT" ${CLI_PIN[@]+"${CLI_PIN[@]}"} atftp -g -r small -l "$WORK/conc/$i" "${opts[@]}" "$HOST" "$PORT" >/dev/null 2>&1
			echo $? >"$WORK/conc/$i.rc") &
		cpids+=($!)
	done
	wait "${cpids[@]}" 2>/dev/null || true
	t1=$(date +%s%N)
	fails=0
	for i in $(seq "$CLIENTS"); do
		if [[ $(cat "$WORK/conc/$i.rc" 2>/dev/null) != 0 ]] || ! cmp -s "$WORK/conc/$i" "$SRV_ROOT/small"; then
			fails=$((fails + 1))
		fi
	done
	rss=$(awk '/VmHWM/{printf "%.1f MB", $2/1024}' "/proc/$SPID/status")
	quiesce
	c1=$(cpu_ns "$srv")
	cpu=$(cpu_per_gib $((c1 - c0)) $((CLIENTS << 20)))
	# Context switches of the server's threads alive now, per DATA block sent
	# (pxed's threads live on; threads that exited, as atftpd's per-transfer
	# ones, are not counted: "-").
	csw=-
	if [[ $srv == pxed ]]; then
		csw=$(cat /proc/"$SPID"/task/*/status 2>/dev/null | awk -v b=$((CLIENTS * ((1 << 20) / 1468 + 1))) '/ctxt_switches/{s+=$2} END{printf "%.2f", s/b}')
	fi
	[[ $srv == tftpd-hpa ]] && rss="$rss (parent; forks)"
	agg=$(awk -v n=$((CLIENTS << 20)) -v ns=$((t1 - t0)) 'BEGIN{printf "%.1f", n/1e6/(ns/1e9)}')
	drops=$(($(rcvbuf_errors) - drops0))
	stop
	local re=-
	if [[ $srv == pxed ]]; then re=$(resent); fi
	printf '%-10s %-14s %10s %9s %12s %8s %7s %9s %9s\n' "$srv" "$label" "$agg" "$fails" "$rss" "$drops" "$re" "$cpu" "$csw"
	((fails == 0)) && AGG[$srv,$label]=$agg
	rm -rf "$WORK/conc"
}
declare -A AGG
IFS=, read -ra runs <<<"$CONC"
for r in "${runs[@]}"; do
	case $r in
	*-w16) conc "${r%-w16}" "windowsize 16" ;;
	*) conc "$r" "" ;;
	esac
done
fastest=0
for srv in tftpd-hpa dnsmasq atftpd; do
	v=${AGG[$srv,lockstep]:-}
	[[ -n $v ]] && fastest=$(awk -v a="$v" -v b="$fastest" 'BEGIN{print (a>b)?a:b}')
done
echo "pxed lockstep vs fastest lockstep reference: $(ratio "${AGG[pxed,lockstep]:-}" "$fastest") (target >= 1.0x)"
