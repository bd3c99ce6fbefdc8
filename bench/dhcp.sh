#!/usr/bin/env bash
# bench/dhcp.sh — DHCPv4 DORA throughput and latency: pxed against Kea and dnsmasq, measured
# by perfdhcp (Kea's load generator) in one run, each server alone in its own namespace pair.
#
# Usage (root): bench/dhcp.sh [--servers "kea dnsmasq pxed"] [--pxed BIN] [--period S]
#                             [--steps N] [--start-rate R] [--max-rate R] [--clients N]
#                             [--cpu-rate R[,R...]]
#
# For each server, one at a time: a server namespace (198.18.0.1/15) and a client namespace
# (198.18.0.2/15) joined by a veth pair; nothing touches the host's interfaces. perfdhcp sends
# full DORA exchanges (as a relay: giaddr 198.18.0.2, unicast to 198.18.0.1:67) from --clients
# distinct MACs at a fixed rate for --period seconds. The rate is searched (doubling, then
# bisection, at most --steps runs per server, each against a freshly started server with empty
# lease state) for the highest one with < 1 % drops in both DISCOVER-OFFER and REQUEST-ACK.
# Latency percentiles come from perfdhcp's per-exchange timestamps (-x t).
# CPU: the server's CPU time (user + system of its process, from /proc/PID/stat, before and
# after the step) per 1,000 DORA is measured in every step; the table shows it at the highest
# passing rate with the capacity it implies for one core (DORA per CPU-second), which does not
# depend on how fast perfdhcp can send. Last, one run at each --cpu-rate (default 250,8000: all
# three sustain 250/s, Kea and pxed 8,000/s) that the server passed in its search compares the
# servers' cost at one rate.
#
# Leases are kept on disk for every server (work dir under /var/tmp, never tmpfs):
#   kea      memfile backend, persist true (CSV appended per lease, not fsync'd by Kea)
#   dnsmasq  --dhcp-leasefile (whole file rewritten after changes, not fsync'd)
#   pxed     --data-dir: SQLite, WAL, synchronous=FULL, committed before the ACK is sent
#
# Environment: KEEP_WORK=1 keeps the work dir; KEA_MT=true turns Kea's multi-threading on;
# PXED_EXTRA="--flag value" adds (word-split) flags to pxed serve.
#
# Exit: 0 when every requested server was measured, 1 on a failure, 2 on usage errors.
set -euo pipefail

SERVERS="kea dnsmasq pxed"
PXED_BIN=""
PERIOD=8
STEPS=8
START_RATE=2000
MAX_RATE=40000
CLIENTS=100000
CPU_RATES="250,8000"
KEA_MT=${KEA_MT:-false}
RANGE_FIRST=198.18.1.0
RANGE_LAST=198.19.255.250

usage() {
	sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

while [ $# -gt 0 ]; do
	case "$1" in
	--servers) SERVERS="$2"; shift 2 ;;
	--pxed) PXED_BIN="$2"; shift 2 ;;
	--period) PERIOD="$2"; shift 2 ;;
	--steps) STEPS="$2"; shift 2 ;;
	--start-rate) START_RATE="$2"; shift 2 ;;
	--max-rate) MAX_RATE="$2"; shift 2 ;;
	--clients) CLIENTS="$2"; shift 2 ;;
	--cpu-rate) CPU_RATES="$2"; shift 2 ;;
	-h | --help) usage ;;
	*) echo "dhcp.sh: unknown argument $1" >&2; usage ;;
	esac
done
for v in PERIOD STEPS START_RATE MAX_RATE CLIENTS; do
	case "${!v}" in
	'' | *[!0-9]*) echo "dhcp.sh: --$(echo "$v" | tr 'A-Z_' 'a-z-') wants a whole number, got '${!v}'" >&2; exit 2 ;;
	esac
done
case "$CPU_RATES" in
'' | ,* | *, | *,,* | *[!0-9,]*) echo "dhcp.sh: --cpu-rate wants rates separated by commas (e.g. 250,8000), got '$CPU_RATES'" >&2; exit 2 ;;
esac
CPU_RATES=${CPU_RATES//,/ }
if [ "$CLIENTS" -lt 10000 ] || [ "$CLIENTS" -gt 130000 ]; then
	echo "dhcp.sh: --clients $CLIENTS: write 10000..130000 (the pool holds ~131k addresses)" >&2
	exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "dhcp.sh: needs root (network namespaces); run it with sudo" >&2
	exit 2
fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
TAG=$$
NS_S="pxb-s-$TAG"
NS_C="pxb-c-$TAG"
IF_S="pxbs$TAG"
IF_C="pxbc$TAG"
SRV_ADDR=198.18.0.1
CLI_ADDR=198.18.0.2
WORK=$(mktemp -d /var/tmp/pxed-bench-dhcp.XXXXXX)
SERVER_PGID=""

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

# stop_server [SIGNAL] ends the process group of the server this script started (never
# anything else): TERM by default, then KILL after 5 s.
stop_server() {
	[ -n "$SERVER_PGID" ] || return 0
	kill "-${1:-TERM}" -- "-$SERVER_PGID" 2>/dev/null || true
	for _ in $(seq 50); do
		kill -0 -- "-$SERVER_PGID" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$SERVER_PGID" 2>/dev/null || true
	SERVER_PGID=""
}

cleanup() {
	stop_server
	ip netns del "$NS_S" 2>/dev/null || true
	ip netns del "$NS_C" 2>/dev/null || true
	if [ -n "${KEEP_WORK:-}" ]; then
		log "work dir kept: $WORK"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# install_missing installs perfdhcp, Kea and dnsmasq from Debian when absent. A policy-rc.d
# that returns 101 keeps the kea-dhcp4-server package from starting its service on the host.
install_missing() {
	local pkgs=()
	command -v perfdhcp >/dev/null || pkgs+=(kea-admin)
	command -v kea-dhcp4 >/dev/null || pkgs+=(kea-dhcp4-server)
	command -v dnsmasq >/dev/null || pkgs+=(dnsmasq-base)
	[ ${#pkgs[@]} -gt 0 ] || return 0
	log "installing ${pkgs[*]}"
	local prc=/usr/sbin/policy-rc.d saved=""
	if [ -e "$prc" ]; then
		saved="$WORK/policy-rc.d.saved"
		cp -p "$prc" "$saved"
	fi
	printf '#!/bin/sh\nexit 101\n' >"$prc"
	chmod 755 "$prc"
	local rc=0
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}" \
		>"$WORK/apt.log" 2>&1 || rc=$?
	if [ -n "$saved" ]; then cp -p "$saved" "$prc"; else rm -f "$prc"; fi
	if [ "$rc" -ne 0 ]; then
		tail -20 "$WORK/apt.log" >&2
		echo "dhcp.sh: apt-get install ${pkgs[*]} failed (run apt-get update first?)" >&2
		exit 1
	fi
}

setup_net() {
	ip netns add "$NS_S"
	ip netns add "$NS_C"
	ip link add "$IF_S" netns "$NS_S" type veth peer name "$IF_C" netns "$NS_C"
	ip -n "$NS_S" addr add "$SRV_ADDR/15" dev "$IF_S"
	ip -n "$NS_C" addr add "$CLI_ADDR/15" dev "$IF_C"
	for ns in "$NS_S" "$NS_C"; do ip -n "$ns" link set lo up; done
	ip -n "$NS_S" link set "$IF_S" up
	ip -n "$NS_C" link set "$IF_C" up
}

write_kea_conf() { # dir
	cat >"$1/kea.json" <<EOF
{"Dhcp4": {
  "interfaces-config": {"interfaces": ["$IF_S"], "dhcp-socket-type": "udp"},
  "lease-database": {"type": "memfile", "persist": true, "name": "$1/kea-leases4.csv",
                     "lfc-interval": 3600},
  "multi-threading": {"enable-multi-threading": $KEA_MT, "thread-pool-size": 2,
                      "packet-queue-size": 256},
  "valid-lifetime": 3600,
  "subnet4": [{"id": 1, "subnet": "198.18.0.0/15",
               "pools": [{"pool": "$RANGE_FIRST - $RANGE_LAST"}]}],
  "loggers": [{"name": "kea-dhcp4", "severity": "WARN",
               "output_options": [{"output": "$1/kea.log"}]}]
}}
EOF
}

# start_server starts server $1 with state in $2, in the server namespace, in its own session.
start_server() {
	local name=$1 dir=$2
	mkdir -p "$dir"
	case "$name" in
	kea)
		write_kea_conf "$dir"
		KEA_PIDFILE_DIR="$dir" KEA_LOCKFILE_DIR="$dir" \
			setsid ip netns exec "$NS_S" kea-dhcp4 -c "$dir/kea.json" >"$dir/server.out" 2>&1 &
		;;
	dnsmasq)
		# --port=0: no DNS; --no-ping: Kea and pxed (as benchmarked) do not ping either.
		setsid ip netns exec "$NS_S" dnsmasq --keep-in-foreground --conf-file=/dev/null \
			--port=0 --interface="$IF_S" --bind-interfaces --no-ping --quiet-dhcp \
			--dhcp-authoritative --dhcp-range="$RANGE_FIRST,$RANGE_LAST,255.254.0.0,1h" \
			--dhcp-lease-max=200000 --dhcp-leasefile="$dir/dnsmasq.leases" \
			--pid-file="$dir/dnsmasq.pid" --log-facility="$dir/dnsmasq.log" \
			>"$dir/server.out" 2>&1 &
		;;
	pxed)
		# probe_timeout off: no ICMP check before an offer (dnsmasq runs with --no-ping, Kea
		# has none); everything else comes from the flags.
		# The profile's kernel and initrd are placeholders: perfdhcp is no PXE client.
		head -c 4096 /dev/zero >"$dir/vmlinuz"
		head -c 4096 /dev/zero >"$dir/initrd.img"
		cat >"$dir/pxed.yaml" <<EOF
dhcp:
  probe_timeout: "off"
default_profile: bench
profiles:
  bench:
    kernel: $dir/vmlinuz
    initrds: [$dir/initrd.img]
EOF
		setsid ip netns exec "$NS_S" "$PXED_BIN" serve --config "$dir/pxed.yaml" --dhcp server \
			--interface "$IF_S" --dhcp-range "$RANGE_FIRST-$RANGE_LAST" --data-dir "$dir/data" \
			--tftp-addr off --http-addr "127.0.0.1:8080" --log-level warn ${PXED_EXTRA:+$PXED_EXTRA} \
			>"$dir/server.out" 2>&1 &
		;;
	esac
	SERVER_PGID=$!
	disown "$SERVER_PGID" # no "Killed" notice when stop_server ends it
	# Ready when something listens on UDP 67 in the server namespace (10 s at most).
	for _ in $(seq 100); do
		if ! kill -0 "$SERVER_PGID" 2>/dev/null; then
			echo "dhcp.sh: $name exited at start:" >&2
			tail -20 "$dir/server.out" >&2
			SERVER_PGID=""
			return 1
		fi
		if ip netns exec "$NS_S" ss -Hlun 'sport = :67' | grep -q .; then
			return 0
		fi
		sleep 0.1
	done
	echo "dhcp.sh: $name not listening on UDP 67 after 10 s" >&2
	tail -20 "$dir/server.out" >&2
	return 1
}

# server_cpu: CPU time (user + system) of the running server's whole process group, waited-for
# children included, in clock ticks. `setsid ip netns exec` execs the server, so the group is
# the server and whatever it forks.
server_cpu() {
	local pid t=0
	for pid in $(pgrep -g "$SERVER_PGID" 2>/dev/null); do
		t=$((t + $(awk '{ sub(/^.*\) /, ""); print $12 + $13 + $14 + $15 }' "/proc/$pid/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

# rcvbuf_drops NS: datagrams the kernel dropped in namespace NS so far because a socket's
# receive buffer was full (UdpRcvbufErrors): in the client namespace that is perfdhcp falling
# behind, in the server namespace the server.
rcvbuf_drops() {
	ip netns exec "$1" nstat -asz UdpRcvbufErrors 2>/dev/null | awk '$1 == "UdpRcvbufErrors" { n = $2 } END { print n + 0 }'
}

# ms_per_kdora TICKS ACKS: CPU milliseconds per 1,000 acknowledged exchanges.
ms_per_kdora() {
	awk -v t="$1" -v a="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (a > 0) printf "%.0f", t / hz * 1e6 / a; else print "-" }'
}

# per_cpu_second TICKS ACKS: acknowledged exchanges per CPU-second of the server.
per_cpu_second() {
	awk -v t="$1" -v a="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN { if (t > 0 && a > 0) printf "%.0f", a / (t / hz); else print "-" }'
}

# run_perfdhcp RATE SECONDS OUT: one fixed-rate run. Pass/fail is judged on the final
# statistics, after -W lets the replies still in flight arrive. -D only cuts short a run that
# has clearly failed (5 % of the planned exchanges lost): perfdhcp 2.2 counts requests still in
# flight as drops, so "-D 1%" aborts healthy runs after their first 10 exchanges (one request
# outstanding is 9 %), and an absolute 1 % aborts on a single latency spike at low rates.
run_perfdhcp() {
	local rate=$1 secs=$2 out=$3
	local maxdrop=$((rate * secs / 20 + 10))
	timeout $((secs + 30)) ip netns exec "$NS_C" perfdhcp -4 -g single -l "$IF_C" \
		-r "$rate" -R "$CLIENTS" -p "$secs" -D "$maxdrop" -W 500000 -x et \
		"$SRV_ADDR" >"$out" 2>&1 || true
}

# parse_run OUT: prints "do_sent do_rcvd do_drop% ra_sent ra_rcvd ra_drop% do_avg ra_avg do_max ra_max"
# from perfdhcp's final statistics (fields absent: 0).
parse_run() {
	awk '
	/Statistics for: DISCOVER-OFFER/ { s = "do" }
	/Statistics for: REQUEST-ACK/ { s = "ra" }
	/Timestamps for packets/ { s = "" }
	s != "" && /^sent packets:/ { v[s "sent"] = $3 }
	s != "" && /^received packets:/ { v[s "rcvd"] = $3 }
	s != "" && /^drops ratio:/ { v[s "drop"] = $3 }
	s != "" && /^avg delay:/ { v[s "avg"] = $3 }
	s != "" && /^max delay:/ { v[s "max"] = $3 }
	END {
		n = split("dosent dorcvd dodrop rasent rarcvd radrop doavg raavg domax ramax", k, " ")
		for (i = 1; i <= n; i++) printf "%s%s", (k[i] in v ? v[k[i]] : 0), (i < n ? " " : "\n")
	}' "$1"
}

# percentiles OUT: "do_p50 do_p99 ra_p50 ra_p99" in ms from the -x t timestamps.
percentiles() {
	local out=$1 sec
	for sec in DISCOVER-OFFER REQUEST-ACK; do
		awk -v sec="$sec" '
		/^\*\*\*Timestamps for packets:/ { on = index($0, sec) > 0; next }
		/^\*\*\*/ { on = 0 }
		on && /^sent \/ received:/ { printf "%.3f\n", ($6 - $4) * 1000 }' "$out" |
			sort -n | awk '{ a[NR] = $1 } END {
				if (NR == 0) { printf "- - "; exit }
				i50 = int(NR * 0.50); if (i50 < 1) i50 = 1
				i99 = int(NR * 0.99); if (i99 < 1) i99 = 1
				printf "%s %s ", a[i50], a[i99] }'
	done
	echo
}

# leases_on_disk SERVER DIR: distinct addresses in the server's lease storage after a run.
leases_on_disk() {
	case "$1" in
	kea) cat "$2"/kea-leases4.csv* 2>/dev/null | awk -F, 'NR > 1 && $1 ~ /^[0-9]/ { a[$1] = 1 } END { print length(a) }' ;;
	dnsmasq) awk '{ a[$3] = 1 } END { print length(a) }' "$2/dnsmasq.leases" 2>/dev/null || echo 0 ;;
	pxed) "$PXED_BIN" leases --data-dir "$2/data" 2>/dev/null | awk 'NR > 1 && $2 == "bound" { n++ } END { print n + 0 }' ;;
	esac
}

# measure SERVER: the rate search. Sets RESULT_<server> to a table row.
measure() {
	local name=$1 lo=0 hi=0 rate=$START_RATE step best_row="" res climit=""
	log "== $name"
	for step in $(seq "$STEPS"); do
		local dir="$WORK/$name-$step" out
		out="$dir/perfdhcp.out"
		start_server "$name" "$dir" || return 1
		local c0 c1 cpu cap sq0 sq1 cq0 cq1
		sq0=$(rcvbuf_drops "$NS_S")
		cq0=$(rcvbuf_drops "$NS_C")
		c0=$(server_cpu)
		run_perfdhcp "$rate" "$PERIOD" "$out"
		c1=$(server_cpu)
		sq1=$(rcvbuf_drops "$NS_S")
		cq1=$(rcvbuf_drops "$NS_C")
		# SIGKILL: no server gets to flush anything at exit; what is on disk is what it wrote.
		stop_server KILL
		local ondisk
		ondisk=$(leases_on_disk "$name" "$dir")
		local dos dod rar rad doa raa dom ram achieved pass=no
		read -r dos _ dod _ rar rad doa raa dom ram <<<"$(parse_run "$out")"
		achieved=$(awk -v n="$rar" -v p="$PERIOD" 'BEGIN { printf "%d", n / p }')
		cpu=$(ms_per_kdora $((c1 - c0)) "$rar")
		cap=$(per_cpu_second $((c1 - c0)) "$rar")
		if awk -v a="$dod" -v b="$rad" -v s="$dos" -v want=$((rate * PERIOD)) \
			'BEGIN { exit !(a < 1 && b < 1 && s >= 0.95 * want) }'; then
			pass=yes
		fi
		log "$name step $step: rate $rate/s: sent $dos, acked $rar ($achieved DORA/s)," \
			"drops DO $dod% RA $rad%, avg DO ${doa} ms RA ${raa} ms, server CPU $cpu ms per 1,000 DORA ($cap DORA per CPU-second)," \
			"receive buffer overflows: server $((sq1 - sq0)), perfdhcp $((cq1 - cq0)); $ondisk leases on disk: $pass"
		# A failed step is perfdhcp's limit, not the server's, when perfdhcp could not send the
		# rate or the only receive buffer that overflowed was perfdhcp's.
		local client_limited=no
		if grep -q "Reached maximum" "$out"; then
			log "$name: run cut short after $dos exchanges: more than 5 % lost"
		elif [ "$dos" -lt $((rate * PERIOD * 95 / 100)) ]; then
			log "$name: perfdhcp sent only $dos of $((rate * PERIOD)) (-g single): the client is the limit"
			client_limited=yes
		fi
		if [ $((cq1 - cq0)) -gt 0 ] && [ $((sq1 - sq0)) -eq 0 ]; then
			client_limited=yes
		fi
		if [ "$pass" = yes ]; then
			lo=$rate
			res=$(percentiles "$out")
			best_row="$name $achieved $doa $raa $res $dom $ram $cpu $cap"
			if [ "$hi" -eq 0 ]; then rate=$((rate * 2)); else rate=$(((lo + hi) / 2)); fi
			if [ "$rate" -gt "$MAX_RATE" ]; then
				[ "$lo" -ge "$MAX_RATE" ] && break
				rate=$MAX_RATE
			fi
		else
			# The lowest failing rate decides whether the result is the server's limit.
			hi=$rate
			rate=$(((lo + hi) / 2))
			if [ "$client_limited" = yes ]; then climit="*"; else climit=""; fi
		fi
		if [ "$rate" -ge 2000 ]; then rate=$((rate / 100 * 100)); else rate=$((rate / 10 * 10)); fi
		# Stop at 5 % resolution, or when the next rate is one already run.
		if [ "$hi" -gt 0 ] && [ $(((hi - lo) * 20)) -le "$hi" ]; then break; fi
		if [ "$rate" -le "$lo" ] || { [ "$hi" -gt 0 ] && [ "$rate" -ge "$hi" ]; } || [ "$rate" -lt 100 ]; then break; fi
	done
	# CPU per DORA at each common rate the server sustained in the search (5 s at most: at a
	# low rate that is thousands of exchanges).
	local cpu_common="" CPU_PERIOD=$((PERIOD < 5 ? PERIOD : 5)) cr
	for cr in $CPU_RATES; do
		local c=-
		if [ "$lo" -ge "$cr" ]; then
			local dir="$WORK/$name-cpu-$cr" out c0 c1 dod rar rad
			out="$dir/perfdhcp.out"
			start_server "$name" "$dir" || return 1
			c0=$(server_cpu)
			run_perfdhcp "$cr" "$CPU_PERIOD" "$out"
			c1=$(server_cpu)
			stop_server KILL
			read -r _ _ dod _ rar rad _ <<<"$(parse_run "$out")"
			if awk -v a="$dod" -v b="$rad" 'BEGIN { exit !(a < 1 && b < 1) }'; then
				c=$(ms_per_kdora $((c1 - c0)) "$rar")
			fi
			log "$name: at $cr/s (drops DO $dod% RA $rad%) the server used $c ms of CPU per 1,000 DORA"
		fi
		cpu_common="$cpu_common $c"
	done
	if [ -z "$best_row" ]; then
		best_row="$name 0 - - - - - - - - - -"
	elif [ -n "$climit" ]; then
		best_row=$(echo "$best_row" | awk '{ $2 = $2 "*"; print }')
	fi
	printf -v "RESULT_$name" '%s' "$best_row$cpu_common"
}

main() {
	install_missing
	for s in $SERVERS; do
		case "$s" in
		kea | dnsmasq) ;;
		pxed)
			if [ -z "$PXED_BIN" ]; then
				PXED_BIN="$WORK/pxed"
				log "building pxed"
				(cd "$REPO" && go build -o "$PXED_BIN" ./cmd/pxed)
			fi
			;;
		*) echo "dhcp.sh: unknown server '$s' (kea, dnsmasq, pxed)" >&2; exit 2 ;;
		esac
	done
	PXED_EXTRA=${PXED_EXTRA:-}
	setup_net
	local fsync_rate
	fsync_rate=$(dd if=/dev/zero of="$WORK/fsync.test" bs=4k count=300 oflag=dsync 2>&1 |
		awk '/copied/ { for (i = 1; i <= NF; i++) if ($i == "s,") t = $(i - 1) } END { if (t > 0) printf "%d", 300 / t }')
	rm -f "$WORK/fsync.test"
	log "work dir $WORK ($(df -T "$WORK" | awk 'NR == 2 { print $2 }'), ~${fsync_rate:-?} fsync'd 4k writes/s);" \
		"$(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
	local failed=0
	for s in $SERVERS; do
		measure "$s" || failed=1
	done

	echo
	echo "DHCPv4 DORA, perfdhcp $(perfdhcp -v 2>&1 | awk '{ print $2 }'): -R $CLIENTS clients," \
		"${PERIOD}s per step, <= $STEPS steps, pass = <1 % drops (DO and RA); latency in ms"
	echo "at the highest passing rate (p50/p99 from perfdhcp -x t per-exchange timestamps)"
	echo "CPU: server CPU ms per 1,000 DORA and DORA per CPU-second (one core's capacity) at the"
	echo "highest passing rate; CPU ms per 1,000 DORA at each common rate (@R/s) a server sustained"
	local s row cr hdr="" dashes=""
	for cr in $CPU_RATES; do
		hdr="$hdr $(printf '%9s' "@$cr")"
		dashes="$dashes -"
	done
	printf '%-8s %10s %9s %9s %9s %9s %9s %9s %9s %9s %9s %10s%s\n' server "DORA/s" "DO avg" "DO p50" \
		"DO p99" "DO max" "RA avg" "RA p50" "RA p99" "RA max" "CPUms/1k" "DORA/CPUs" "$hdr"
	for s in $SERVERS; do
		row="RESULT_$s"
		row=${!row:-"$s 0 - - - - - - - - - -$dashes"}
		read -r n rate doa raa dop50 dop99 rap50 rap99 dom ram cpu cap cpuc <<<"$row"
		printf '%-8s %10s %9s %9s %9s %9s %9s %9s %9s %9s %9s %10s' "$n" "$rate" "$doa" "$dop50" "$dop99" \
			"$dom" "$raa" "$rap50" "$rap99" "$ram" "$cpu" "$cap"
		for c in $cpuc; do printf ' %9s' "$c"; done
		echo
	done
	local p k d
	p=$(echo "${RESULT_pxed:-}" | awk '{ sub(/\*/, "", $2); print $2 + 0 }')
	k=$(echo "${RESULT_kea:-}" | awk '{ sub(/\*/, "", $2); print $2 + 0 }')
	d=$(echo "${RESULT_dnsmasq:-}" | awk '{ sub(/\*/, "", $2); print $2 + 0 }')
	case "${RESULT_kea:-}${RESULT_dnsmasq:-}${RESULT_pxed:-}" in
	*'*'*) echo "* at the lowest failing rate perfdhcp was the limit (it could not send the rate, or only its own" \
		"receive buffer overflowed): the server's own limit is higher" ;;
	esac
	if [ -n "${RESULT_pxed:-}" ]; then
		# A reference server limited by perfdhcp makes the ratio an upper bound (<=), pxed so
		# limited a lower bound (>=).
		awk -v p="$p" -v k="$k" -v d="$d" -v crs="$CPU_RATES" -v rp="${RESULT_pxed:-}" -v rk="${RESULT_kea:-}" \
			-v rd="${RESULT_dnsmasq:-}" '
			# ratio R: pxed over the server of row R. A side limited by perfdhcp (*) is a lower
			# bound of that server: the ratio is then a bound, or undecided when both are.
			function ratio(r, x,  a, b) {
				a = index(rp, "*") > 0; b = index(r, "*") > 0
				if (a && b) return sprintf("%.2fx (both limited by perfdhcp: undecided)", x)
				return sprintf("%s%.2fx", a ? ">=" : (b ? "<=" : ""), x)
			}
			BEGIN {
			if (k > 0) printf "pxed/Kea     %s (target >= 2x)\n", ratio(rk, p / k)
			if (d > 0) printf "pxed/dnsmasq %s (target >= 2x)\n", ratio(rd, p / d)
			split(rp, P, " "); split(rk, K, " "); split(rd, D, " ")
			if (P[12] + 0 > 0 && K[12] + 0 > 0)
				printf "one core at the highest passing rate: pxed/Kea %.2fx (%d vs %d DORA per CPU-second)\n", P[12] / K[12], P[12], K[12]
			if (P[12] + 0 > 0 && D[12] + 0 > 0)
				printf "one core at the highest passing rate: pxed/dnsmasq %.2fx (%d vs %d DORA per CPU-second)\n", P[12] / D[12], P[12], D[12]
			n = split(crs, R, " ")
			for (i = 1; i <= n; i++) {
				f = 12 + i
				printf "CPU ms per 1,000 DORA at %s/s: pxed %s, Kea %s, dnsmasq %s", R[i], P[f] == "" ? "-" : P[f],
					K[f] == "" ? "-" : K[f], D[f] == "" ? "-" : D[f]
				if (P[f] + 0 > 0 && K[f] + 0 > 0) printf " (per CPU-second pxed/Kea %.2fx)", K[f] / P[f]
				printf "\n"
			} }'
	fi
	return "$failed"
}

main "$@"; exit $?
