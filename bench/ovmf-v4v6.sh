#!/usr/bin/env bash
# bench/ovmf-v4v6.sh — one OVMF machine PXE-booting over IPv4 and over IPv6, in the same run.
#
# Usage (root): bench/ovmf-v4v6.sh [--runs N] [--modes "v4 v6 v6-pref255 v4-server v6-server"] [--out DIR]
#
# One lab, dual stack, in namespaces this script creates and removes (nothing touches the host's
# interfaces): a bridge holding 192.0.2.1/24 and 2001:db8::1/64 where `pxed boot` runs in proxy
# mode (ProxyDHCP and ProxyDHCPv6, TFTP, HTTP, router advertisements with the O flag), and
# dnsmasq on 192.0.2.2 / 2001:db8::2 as the network's address server for both families (no boot
# options; iPXE's DHCPv6 left to pxed). The same machine (QEMU, TCG, Debian's OVMF, no NIC ROM,
# MAC 52:54:00:00:46:01, fresh NVRAM every boot) boots --runs times per mode, modes interleaved:
#   v4          PXE over IPv4 only (fw_cfg IPv6PXESupport=no)
#   v6          PXE over IPv6 only (fw_cfg IPv4PXESupport=no)
#   v6-pref255  as v6, the DHCPv6 address server's Advertise carrying preference 255: Kea
#               (kea-dhcp6, option-data preference 255, always sent) in dnsmasq's place for
#               DHCPv6 (dnsmasq 2.90 always sends its own preference 0 and drops
#               --dhcp-option=option6:7,255), dnsmasq still serving DHCPv4
#   v4-server   PXE over IPv4 only, pxed the DHCPv4 and DHCPv6 server of the segment (no dnsmasq):
#               address and boot file in one offer (`--dhcp-range`, `--dhcp6-range`, router
#               advertisements with the M flag), the defaults a user gets (address probe 300 ms)
#   v6-server   as v4-server, PXE over IPv6 only: pxed's Advertise carries address, boot file URL
#               and preference 255 (its default in the server role)
# After EDK II the machine runs snponly.efi (iPXE), whose DHCP runs over both families whatever
# the mode: the column "script" says over which one iPXE fetched its script.
# Times are seconds from QEMU's start to: the firmware's first DHCP message (DISCOVER or
# Solicit, from tcpdump on the bridge), pxed's offer (its first dhcp-offer event), the firmware's
# REQUEST/Request to the address server (the end of its offer collection), pxed's boot service
# answer (dhcp-ack, port 4011), the NBP loaded (tftp-done) and the marker on the serial console.
# "collect" is first DHCP message → Request: how long EDK II waited for more offers. Over IPv6
# "dhcp1" is PXE's Solicit (option 61), not the one EDK II's Ip6Config sends on the RA's M flag
# (server role; pxed's first "offer" event there answers that one). The phase table
# (bench/phases.sh over a capture of everything on the bridge) breaks each boot down further:
# router solicitation and advertisement, DAD, TFTP, iPXE's DHCPv4, router solicitation and
# DHCPv6, script and kernel.
# Needs: qemu-system-x86, ovmf, dnsmasq-base, tcpdump, jq, curl, bc, bsdextrautils (column), go (and kea-dhcp6-server for
# v6-pref255); lab assets (make assets).
# Exit: 0 when every boot reached the marker, 1 otherwise, 2 on usage errors.
set -euo pipefail

RUNS=3
MODES="v4 v6"
OUT=
MAC=52:54:00:00:46:01

usage() {
	sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}
while [ $# -gt 0 ]; do
	case "$1" in
	--runs) RUNS="$2"; shift 2 ;;
	--modes) MODES="$2"; shift 2 ;;
	--out) OUT="$2"; shift 2 ;;
	-h | --help) usage ;;
	*) echo "ovmf-v4v6.sh: unknown argument $1" >&2; usage ;;
	esac
done
case "$RUNS" in '' | *[!0-9]* | 0) echo "ovmf-v4v6.sh: --runs wants a whole number ≥ 1, got '$RUNS'" >&2; exit 2 ;; esac
for m in $MODES; do
	case "$m" in v4 | v6 | v6-pref255 | v4-server | v6-server) ;; *) echo "ovmf-v4v6.sh: --modes: $m is not v4, v6, v6-pref255, v4-server or v6-server" >&2; exit 2 ;; esac
done
if [ "$(id -u)" -ne 0 ]; then
	echo "ovmf-v4v6.sh: needs root (network namespaces, tap devices)" >&2
	exit 2
fi
for bin in qemu-system-x86_64 dnsmasq tcpdump jq curl bc column ip go; do
	command -v "$bin" >/dev/null || { echo "ovmf-v4v6.sh: needs $bin (apt-get install qemu-system-x86 ovmf dnsmasq-base tcpdump jq curl bc bsdextrautils iproute2)" >&2; exit 2; }
done
case " $MODES " in
*" v6-pref255 "*) command -v kea-dhcp6 >/dev/null || { echo "ovmf-v4v6.sh: v6-pref255 needs kea-dhcp6 (apt-get install kea-dhcp6-server)" >&2; exit 2; } ;;
esac
REPO=$(cd "$(dirname "$0")/.." && pwd)
LAB=${PXED_LAB:-$REPO/.cache/lab}
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd
for f in "$LAB/vmlinuz" "$LAB/initrd.img" "$OVMF_CODE" "$OVMF_VARS"; do
	[ -f "$f" ] || { echo "ovmf-v4v6.sh: missing $f (make assets; apt-get install ovmf)" >&2; exit 2; }
done

TAG=$$
NS_S="pxb-s-$TAG"
NS_D="pxb-d-$TAG"
WORK=$(mktemp -d /var/tmp/pxed-bench-v4v6.XXXXXX)
PGIDS=()
DNSMASQ_PG=

log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }

# start NAME NS CMD... runs CMD in namespace NS as the leader of a new process group (setsid),
# output to $WORK/NAME.log, and records the group to stop it later; LAST_PG is its id.
start() {
	local name=$1 ns=$2
	shift 2
	setsid ip netns exec "$ns" "$@" >"$WORK/$name.log" 2>&1 &
	LAST_PG=$!
	PGIDS+=("$LAST_PG")
}

# stop_group PG ends one process group this script started: SIGTERM, SIGKILL after 3 s.
stop_group() {
	kill -TERM -- "-$1" 2>/dev/null || true
	for _ in $(seq 30); do
		kill -0 -- "-$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -KILL -- "-$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

cleanup() {
	local pg
	for pg in "${PGIDS[@]}"; do stop_group "$pg"; done
	ip netns del "$NS_D" 2>/dev/null || true
	ip netns del "$NS_S" 2>/dev/null || true
	[ -z "$OUT" ] || cp "$WORK"/*.log "$WORK"/*.serial "$WORK"/*.dhcp "$WORK"/*.json "$WORK"/*.pcap "$WORK"/*.t0 "$OUT/" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

# wait_for WHAT SECONDS CMD... polls CMD every 0.1 s.
wait_for() {
	local what=$1 n=$(($2 * 10))
	shift 2
	for _ in $(seq "$n"); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "ovmf-v4v6.sh: timed out waiting for $what" >&2
	return 1
}

# --- the lab ---
ip netns add "$NS_S"
ip netns add "$NS_D"
ip -n "$NS_S" link set lo up
ip -n "$NS_D" link set lo up
ip -n "$NS_S" link add br0 type bridge stp_state 0 forward_delay 0 mcast_snooping 0
ip -n "$NS_S" addr add 192.0.2.1/24 dev br0
ip -n "$NS_S" addr add 2001:db8::1/64 dev br0 nodad
ip -n "$NS_S" link set br0 up
ip netns exec "$NS_S" sysctl -qw net.ipv6.conf.br0.accept_ra=0
ip -n "$NS_S" link add vd0 type veth peer name eth0 netns "$NS_D"
ip -n "$NS_S" link set vd0 master br0 up
ip -n "$NS_D" addr add 192.0.2.2/24 dev eth0
ip -n "$NS_D" addr add 2001:db8::2/64 dev eth0 nodad
# No DAD on the address server's link: Kea binds its link-local address at start.
ip netns exec "$NS_D" sysctl -qw net.ipv6.conf.eth0.accept_dad=0
ip -n "$NS_D" link set eth0 up

log "building pxed"
(cd "$REPO" && go build -o "$WORK/pxed" ./cmd/pxed)
PXED_PG=
PXED_ROLE=

# start_pxed proxy|server (re)starts pxed: proxy mode beside the address servers, or the
# segment's DHCPv4 and DHCPv6 server.
start_pxed() {
	[ -z "$PXED_PG" ] || stop_group "$PXED_PG"
	local role=()
	[ "$1" = proxy ] || role=(--dhcp-range 192.0.2.100-192.0.2.200 --dhcp6-range 2001:db8::1000-2001:db8::10ff)
	start "pxed-$1" "$NS_S" "$WORK/pxed" boot --interface br0 --kernel "$LAB/vmlinuz" --initrd "$LAB/initrd.img" \
		--cmdline "console=ttyS0 panic=-1" --tftp-addr :69 --http-addr :8080 --data-dir "$WORK/data" \
		--router-advertisements --log-level info "${role[@]}"
	PXED_PG=$LAST_PG
	PXED_ROLE=$1
	wait_for "pxed to serve HTTP" 20 ip netns exec "$NS_S" curl -sf http://192.0.2.1:8080/healthz
}

# start_servers plain|pref255|server (re)starts the address servers: dnsmasq for DHCPv4 and
# (plain) DHCPv6, addresses only; for pref255 Kea for DHCPv6, every Advertise with preference
# 255; for server none (pxed is the server).
start_servers() {
	local pg
	for pg in $SERVER_PGS; do stop_group "$pg"; done
	SERVER_PGS=
	if [ "$1" = server ]; then
		start_pxed server
		return 0
	fi
	[ "$PXED_ROLE" = proxy ] || start_pxed proxy
	rm -f "$WORK/dnsmasq.leases"
	local v6=(--dhcp-range=2001:db8::100,2001:db8::1ff,64,5m)
	[ "$1" = plain ] || v6=()
	start "dnsmasq-$1" "$NS_D" dnsmasq -k --conf-file=/dev/null --port=0 --user=root --group=root \
		--interface=eth0 --bind-interfaces --pid-file="$WORK/dnsmasq.pid" \
		--dhcp-leasefile="$WORK/dnsmasq.leases" --log-facility=- --log-dhcp --no-ping \
		--dhcp-range=192.0.2.100,192.0.2.200,5m "${v6[@]}" \
		--dhcp-userclass=set:ipxe,iPXE --dhcp-ignore=tag:ipxe,tag:dhcpv6
	SERVER_PGS=$LAST_PG
	wait_for "dnsmasq to start" 10 grep -q "DHCP, IP range" "$WORK/dnsmasq-$1.log"
	[ "$1" = pref255 ] || return 0
	mkdir -p "$WORK/kea"
	# iPXE (user class "iPXE": 2-byte length, then the text) is left to pxed, as dnsmasq does.
	cat >"$WORK/kea/kea-dhcp6.conf" <<-KEA
	{ "Dhcp6": {
	  "interfaces-config": { "interfaces": [ "eth0" ] },
	  "data-directory": "$WORK/kea",
	  "lease-database": { "type": "memfile", "persist": false },
	  "preferred-lifetime": 300, "valid-lifetime": 300,
	  "client-classes": [ { "name": "DROP", "test": "substring(option[15].hex,2,4) == 'iPXE'" } ],
	  "subnet6": [ { "id": 1, "subnet": "2001:db8::/64", "interface": "eth0",
	    "pools": [ { "pool": "2001:db8::100-2001:db8::1ff" } ],
	    "option-data": [ { "name": "preference", "data": "255", "always-send": true } ] } ],
	  "loggers": [ { "name": "kea-dhcp6", "output_options": [ { "output": "stdout" } ], "severity": "INFO" } ]
	} }
	KEA
	start kea6 "$NS_D" env KEA_PIDFILE_DIR="$WORK/kea" KEA_LOCKFILE_DIR="$WORK/kea" kea-dhcp6 -c "$WORK/kea/kea-dhcp6.conf"
	SERVER_PGS="$SERVER_PGS $LAST_PG"
	wait_for "kea-dhcp6 to start" 10 grep -q "DHCP6_STARTED" "$WORK/kea6.log"
}
SERVER_PGS=
SERVERS_MODE=

# epoch TIME prints an RFC 3339 time as seconds since the epoch.
epoch() { date -d "$1" +%s.%N; }

# boot MODE RUN boots the machine once and appends a result line to $WORK/results.
boot() {
	local mode=$1 run=$2 want=plain fwcfg
	case "$mode" in v6-pref255) want=pref255 ;; *-server) want=server ;; esac
	if [ "$SERVERS_MODE" != "$want" ]; then
		start_servers "$want"
		SERVERS_MODE=$want
	fi
	case "$mode" in
	v4*) fwcfg=name=opt/org.tianocore/IPv6PXESupport,string=no ;;
	*) fwcfg=name=opt/org.tianocore/IPv4PXESupport,string=no ;;
	esac
	local name="$mode-$run" tap="tap$run${mode//[^0-9a-z]/}"
	tap=${tap:0:15}
	ip -n "$NS_S" tuntap add dev "$tap" mode tap
	ip -n "$NS_S" link set "$tap" master br0 up
	cp "$OVMF_VARS" "$WORK/vars.fd"
	: >"$WORK/$name.serial"
	start "tcpdump-$name" "$NS_S" tcpdump -i br0 -n -l -tt -v 'udp port 67 or udp port 547 or udp port 4011'
	local dump_pg=$LAST_PG
	# Everything on the bridge (ICMPv6, TFTP, HTTP too), for the per-phase table (bench/phases.sh).
	start "pcap-$name" "$NS_S" tcpdump -i br0 -n -s 700 -U -w "$WORK/$name.pcap"
	local pcap_pg=$LAST_PG
	sleep 0.5 # tcpdump opens its socket
	local t0 now
	t0=$(date +%s.%N)
	start "qemu-$name" "$NS_S" qemu-system-x86_64 -accel tcg -m 512 -smp 1 -display none -monitor none -no-reboot \
		-serial "file:$WORK/$name.serial" -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
		-machine q35 -device "virtio-net-pci,netdev=n0,mac=$MAC,bootindex=0,romfile=" \
		-drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE" -drive "if=pflash,format=raw,unit=1,file=$WORK/vars.fd" \
		-fw_cfg "$fwcfg"
	local qemu_pg=$LAST_PG marker=
	for _ in $(seq 2400); do
		if grep -q PXED-BOOT-OK "$WORK/$name.serial"; then
			now=$(date +%s.%N)
			marker=$(echo "$now - $t0" | bc)
			break
		fi
		kill -0 "$qemu_pg" 2>/dev/null || break
		sleep 0.1
	done
	stop_group "$qemu_pg"
	stop_group "$dump_pg"
	stop_group "$pcap_pg"
	echo "$t0" >"$WORK/$name.t0"
	printf '%s\t%s\t%s\n' "$mode" "$run" "$("$REPO/bench/phases.sh" "$WORK/$name.pcap" "$t0")" >>"$WORK/phases"
	cp "$WORK/tcpdump-$name.log" "$WORK/$name.dhcp"
	ip -n "$NS_S" link del "$tap"
	local option
	option=$(grep -ao 'starting Boot[0-9A-F]* "[^"]*' "$WORK/$name.serial" | tail -1 | sed 's/.*"//')
	# OVMF falls back to its next boot option silently: a boot that ended elsewhere failed.
	case "$mode:$option" in
	v4*:"UEFI PXEv4"* | v6*:"UEFI PXEv6"*) ;;
	*) echo "ovmf-v4v6.sh: $mode run $run booted through \"$option\", not PXE over ${mode%%-*}" >&2; marker= ;;
	esac

	# The firmware's DHCP from tcpdump: the first DISCOVER/Solicit and the first REQUEST/Request
	# to the address server after it (port 67/547; not the one to 4011). PXE's Solicit is the one
	# with option 61: EDK II's Ip6Config sends its own on the RA's M flag.
	local first req
	first=$(awk '
		/^[0-9]+\.[0-9]+ IP6? / { ts = $1 }
		/dhcp6 solicit/ && /opt_61/ { print ts; exit }
		/DHCP-Message.*Discover/ { print ts; exit }' "$WORK/$name.dhcp")
	req=$(awk '
		/^[0-9]+\.[0-9]+ IP6? / { ts = $1; to4011 = 0 }
		/\.4011: / { to4011 = 1 }
		/dhcp6 solicit/ && /opt_61/ { pxe = 1 }
		/DHCP-Message.*Discover/ { pxe = 1 }
		/dhcp6 request/ && !to4011 && pxe { print ts; exit }
		/DHCP-Message.*Request/ && !to4011 && pxe { print ts; exit }' "$WORK/$name.dhcp")

	# pxed's timeline: events since t0.
	local tl evs=()
	tl=$(ip netns exec "$NS_S" curl -sf "http://192.0.2.1:8080/api/machines/$MAC/timeline" || echo '[]')
	echo "$tl" >"$WORK/$name.timeline.json"
	local offer="" ack="" nbp="" script="" scriptip=""
	while IFS=$'\t' read -r ts stage ip detail; do
		local e
		e=$(epoch "$ts")
		if [ "$(echo "$e < $t0" | bc)" = 1 ]; then continue; fi
		local rel
		rel=$(echo "$e - $t0" | bc)
		evs+=("$(printf '+%6.2fs %-11s %-28s %s' "$rel" "$stage" "$ip" "$detail")")
		case "$stage" in
		dhcp-offer) [ -n "$offer" ] || offer=$rel ;;
		dhcp-ack) [ -n "$ack" ] || [ -z "$offer" ] || ack=$rel ;;
		tftp-done) [ -n "$nbp" ] || nbp=$rel ;;
		script) if [ -z "$script" ]; then script=$rel; scriptip=$ip; fi ;;
		esac
	done < <(echo "$tl" | jq -r '.[] | [.time, .stage, (.ip // ""), .detail] | @tsv')
	local fam=v4
	case "$scriptip" in *:*) fam=v6 ;; "") fam=- ;; esac
	rel_of() { if [ -n "$1" ]; then echo "$1 - $t0" | bc; else echo -; fi; }
	local first_rel req_rel collect=-
	first_rel=$(rel_of "$first")
	req_rel=$(rel_of "$req")
	if [ -n "$first" ] && [ -n "$req" ]; then collect=$(echo "$req - $first" | bc); fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "$run" "$first_rel" "${offer:--}" "$req_rel" \
		"${ack:--}" "${nbp:--}" "${script:--}" "$fam" "${marker:--}" "$option" >>"$WORK/results"
	printf '%s\t%s\n' "$mode-$run" "$collect" >>"$WORK/collect"
	{
		echo "== $mode run $run: ${option:-no boot option started}; marker ${marker:-never}"
		printf '   %s\n' "${evs[@]}"
		if [ "$mode" = v6-pref255 ]; then
			echo "   address server's Advertise: $(grep -o 'dhcp6 advertise.*IA_NA.*' "$WORK/$name.dhcp" | grep -o 'preference [0-9]*' | head -1 || true)"
		fi
	} >&2
	[ -n "$marker" ]
}

RESULT=0
: >"$WORK/results"
: >"$WORK/collect"
: >"$WORK/phases"
for run in $(seq "$RUNS"); do
	for mode in $MODES; do
		log "boot $mode, run $run"
		boot "$mode" "$run" || RESULT=1
	done
done

echo
echo "OVMF PXE, same machine ($MAC), seconds from QEMU start (pxed $(cd "$REPO" && git rev-parse --short HEAD), $(date -u +%FT%TZ)):"
printf '%-11s %3s %7s %7s %7s %7s %7s %7s %7s %7s %7s  %s\n' mode run dhcp1 offer request ack nbp script via marker collect "boot option"
paste "$WORK/results" <(cut -f2 "$WORK/collect") | while IFS=$'\t' read -r mode run first offer req ack nbp script fam marker option collect; do
	printf '%-11s %3s %7.2f %7.2f %7.2f %7.2f %7.2f %7.2f %7s %7.2f %7.2f  %s\n' "$mode" "$run" "${first/-/0}" "${offer/-/0}" "${req/-/0}" \
		"${ack/-/0}" "${nbp/-/0}" "${script/-/0}" "$fam" "${marker/-/0}" "${collect/-/0}" "$option"
done
echo
echo "phases, seconds from QEMU start, from the capture of everything on the bridge (bench/phases.sh says what each column is):"
{
	printf 'mode\trun\t%s\n' "$("$REPO/bench/phases.sh" --header)"
	cat "$WORK/phases"
} | column -t
echo
echo "median per mode (marker; first DHCP message → NBP loaded):"
for mode in $MODES; do
	med() { sort -n | awk '{ a[NR] = $1 } END { if (NR == 0) print "-"; else if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
	m=$(awk -F'\t' -v m="$mode" '$1 == m && $10 != "-" { print $10 }' "$WORK/results" | med)
	d=$(awk -F'\t' -v m="$mode" '$1 == m && $7 != "-" && $3 != "-" { print $7 - $3 }' "$WORK/results" | med)
	printf '  %-11s marker %6s s   dhcp→nbp %6s s\n' "$mode" "$m" "$d"
done
[ -z "$OUT" ] || { mkdir -p "$OUT"; cp "$WORK/results" "$WORK/phases" "$OUT/"; }
exit $RESULT
