#!/usr/bin/env bash
# demo.sh LABDIR — boot a UEFI machine (QEMU, TCG) from pxed in a private lab and show its timeline.
# Called by `make demo` (after `make build` and `make assets`), from the repository root.
#
#   namespace $NS:      bridge br0 192.0.2.1/24, pxed (ProxyDHCP, TFTP, HTTP 192.0.2.1:8080), tap0
#   namespace $NS-dhcp: eth0 192.0.2.2/24 (veth into br0), dnsmasq handing out addresses only
#   QEMU (OVMF):        virtio NIC on tap0; boots LABDIR/vmlinuz + initrd.img to PXED-BOOT-OK
#
# pxed's "boot event" log lines are shown live; after the marker, the machine's timeline is
# fetched from pxed's API and printed with times relative to the first event.
# Environment: PXED (default ./pxed), BOOT_TIMEOUT seconds (default 180), MAC (default
# 52:54:00:de:00:01), KEEP_LOGS=1 to keep the work directory.
# Needs root (network namespaces). Everything is removed on exit: processes (by process group),
# the tap, the namespaces. Nothing touches the machine's real interfaces.
set -euo pipefail

usage() { echo "usage: $0 LABDIR  (LABDIR holds vmlinuz and initrd.img: make assets)" >&2; exit 2; }
[[ $# -eq 1 ]] || usage
LABDIR=$(cd "$1" 2>/dev/null && pwd) || { echo "demo: $1: no such directory" >&2; usage; }
PXED=${PXED:-./pxed}
BOOT_TIMEOUT=${BOOT_TIMEOUT:-180}
MAC=${MAC:-52:54:00:de:00:01}
NS=pxed-demo-$$
DHCPNS=$NS-dhcp
TAP=tap0
OVMF_CODE=/usr/share/OVMF/OVMF_CODE_4M.fd
OVMF_VARS=/usr/share/OVMF/OVMF_VARS_4M.fd

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }
die() { echo "demo: $*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || { echo "demo: needs root (network namespaces, tap devices)" >&2; exit 2; }
for f in "$LABDIR/vmlinuz" "$LABDIR/initrd.img"; do
	[[ -s $f ]] || { echo "demo: $f missing: run \`make assets\`" >&2; exit 2; }
done
[[ -x $PXED ]] || { echo "demo: $PXED not found: run \`make build\` (or set PXED=path)" >&2; exit 2; }
PXED=$(cd "$(dirname "$PXED")" && pwd)/$(basename "$PXED")

# ---- packages ---------------------------------------------------------------------------------
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
[[ -f $OVMF_CODE && -f $OVMF_VARS ]] || need+=(ovmf)
[[ -e /usr/lib/ipxe/qemu/efi-virtio.rom || -e /usr/share/qemu/efi-virtio.rom ]] || need+=(ipxe-qemu)
[[ -x /usr/sbin/dnsmasq ]] || need+=(dnsmasq-base)
[[ -x /bin/busybox ]] || need+=(busybox-static)
command -v curl >/dev/null || need+=(curl)
command -v jq >/dev/null || need+=(jq)
command -v ip >/dev/null || need+=(iproute2)
if ((${#need[@]})); then
	say "installing ${need[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null ||
		{ apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null; }
fi

# ---- cleanup ----------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/pxed-demo.XXXXXX)
PGIDS=()
cleanup() {
	local rc=$? pg i
	trap - EXIT INT TERM
	for pg in "${PGIDS[@]}"; do kill -TERM -- "-$pg" 2>/dev/null || true; done
	for ((i = 0; i < 30; i++)); do
		local alive=0
		for pg in "${PGIDS[@]}"; do kill -0 -- "-$pg" 2>/dev/null && alive=1; done
		((alive)) || break
		sleep 0.1
	done
	for pg in "${PGIDS[@]}"; do kill -KILL -- "-$pg" 2>/dev/null || true; done
	ip -n "$NS" link del "$TAP" 2>/dev/null || true
	for ns in "$DHCPNS" "$NS"; do
		if ip netns list | awk '{print $1}' | grep -qxF -- "$ns"; then
			# Anything still inside was started by this script.
			for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
			ip netns del "$ns" || echo "demo: could not delete namespace $ns" >&2
		fi
	done
	if [[ ${KEEP_LOGS:-} == 1 || $rc -ne 0 ]]; then
		echo "demo: logs kept in $WORK"
	else
		rm -rf "$WORK"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NS LOG CMD... — run CMD in namespace NS (or the current one if NS is "-") in its own
# process group, output to file LOG (or to this terminal if LOG is "-"); records the group for
# cleanup and sets STARTED to its pid (= its process group id).
start() {
	local ns=$1 log=$2
	shift 2
	[[ $ns == - ]] || set -- ip netns exec "$ns" setsid "$@"
	[[ $ns != - ]] || set -- setsid "$@"
	if [[ $log == - ]]; then
		"$@" </dev/null &
	else
		"$@" >"$log" 2>&1 </dev/null &
	fi
	STARTED=$!
	PGIDS+=("$STARTED")
}

# wait_until SECONDS WHAT CMD... — poll CMD every 0.2 s until it succeeds or SECONDS pass.
wait_until() {
	local secs=$1 what=$2 deadline
	shift 2
	deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		((SECONDS < deadline)) || { echo "demo: timed out after ${secs}s waiting for $what" >&2; return 1; }
		sleep 0.2
	done
}

# ---- lab --------------------------------------------------------------------------------------
say "lab: namespace $NS with bridge br0 (192.0.2.1/24), namespace $DHCPNS (dnsmasq, 192.0.2.2)"
ip netns add "$NS"
ip netns add "$DHCPNS"
ip -n "$NS" link set lo up
ip -n "$DHCPNS" link set lo up
ip -n "$NS" link add br0 type bridge stp_state 0 forward_delay 0
ip -n "$NS" addr add 192.0.2.1/24 dev br0
ip -n "$NS" link set br0 up
ip -n "$NS" link add vdhcp type veth peer name eth0 netns "$DHCPNS"
ip -n "$NS" link set vdhcp master br0 up
ip -n "$DHCPNS" addr add 192.0.2.2/24 dev eth0
ip -n "$DHCPNS" addr add 2001:db8::2/64 dev eth0 nodad
ip -n "$DHCPNS" link set eth0 up
ip -n "$NS" tuntap add dev "$TAP" mode tap
ip -n "$NS" link set "$TAP" master br0 up

say "dnsmasq: addresses only (192.0.2.100-200), no PXE options; IPv6 router advertisements, as a router sends"
start "$DHCPNS" "$WORK/dnsmasq.log" /usr/sbin/dnsmasq -k --conf-file=/dev/null --port=0 \
	--user=root --group=root --interface=eth0 --bind-interfaces \
	--pid-file="$WORK/dnsmasq.pid" --dhcp-leasefile="$WORK/leases" --log-facility=- \
	--dhcp-range=192.0.2.100,192.0.2.200,10m --no-ping \
	--enable-ra --dhcp-range=::,constructor:eth0,ra-only
DNSMASQ=$STARTED
wait_until 10 "dnsmasq to start" grep -q "DHCP, IP range" "$WORK/dnsmasq.log" ||
	{ cat "$WORK/dnsmasq.log" >&2; die "dnsmasq did not start"; }

say "pxed: $PXED boot --interface br0 --kernel $LABDIR/vmlinuz --initrd $LABDIR/initrd.img"
mkdir -p "$WORK/data"
start "$NS" "$WORK/pxed.log" "$PXED" boot --interface br0 \
	--kernel "$LABDIR/vmlinuz" --initrd "$LABDIR/initrd.img" --cmdline "console=ttyS0" \
	--data-dir "$WORK/data" --http-addr 192.0.2.1:8080
PXEDPID=$STARTED
pxed_up() { kill -0 "$PXEDPID" 2>/dev/null && ip netns exec "$NS" curl -s -o /dev/null --max-time 1 http://192.0.2.1:8080/; }
if ! wait_until 15 "pxed to answer on http://192.0.2.1:8080/" pxed_up; then
	tail -n 30 "$WORK/pxed.log" >&2
	die "pxed did not start"
fi

# Live view of pxed's boot events: one slog line each, msg="boot event" with mac, stage, detail.
start - - bash -c '
	tail -n +1 -F "$1" 2>/dev/null | grep --line-buffered -F "boot event" |
		sed -u -E "s/^time=[^ ]+ level=[A-Z]+ msg=\"boot event\" //; s/^/  pxed event: /"' _ "$WORK/pxed.log"

say "QEMU: UEFI (OVMF) machine $MAC on $TAP, TCG; serial console in $WORK/serial.log"
cp "$OVMF_VARS" "$WORK/OVMF_VARS.fd"
T0=$SECONDS
# romfile= : no iPXE option ROM, so OVMF's own PXE client does the first DHCP (arch 7).
start "$NS" "$WORK/qemu.log" qemu-system-x86_64 -accel tcg -machine q35 -m 512 -smp 1 \
	-display none -monitor none -no-reboot \
	-drive "if=pflash,format=raw,unit=0,readonly=on,file=$OVMF_CODE" \
	-drive "if=pflash,format=raw,unit=1,file=$WORK/OVMF_VARS.fd" \
	-netdev "tap,id=n0,ifname=$TAP,script=no,downscript=no" \
	-device "virtio-net-pci,netdev=n0,mac=$MAC,bootindex=0,romfile=" \
	-serial "file:$WORK/serial.log"
QEMU=$STARTED

booted=0
deadline=$((SECONDS + BOOT_TIMEOUT))
while ((SECONDS < deadline)); do
	if grep -q PXED-BOOT-OK "$WORK/serial.log" 2>/dev/null; then
		booted=1
		break
	fi
	kill -0 "$QEMU" 2>/dev/null || { grep -q PXED-BOOT-OK "$WORK/serial.log" && booted=1; break; }
	kill -0 "$PXEDPID" 2>/dev/null || { echo "demo: pxed exited" >&2; break; }
	kill -0 "$DNSMASQ" 2>/dev/null || { echo "demo: dnsmasq exited" >&2; break; }
	sleep 0.5
done
sleep 0.5 # let the live view print the last events
if ((!booted)); then
	echo "demo: no PXED-BOOT-OK on the serial console after $((SECONDS - T0))s" >&2
	echo "--- serial console (last 40 lines):" >&2
	tail -n 40 "$WORK/serial.log" 2>/dev/null | sed -E 's/\x1b\[[0-9;=?]*[A-Za-z]//g' >&2 || true
	echo >&2
	echo "--- qemu:" >&2
	tail -n 10 "$WORK/qemu.log" >&2
	echo "--- pxed (last 30 lines):" >&2
	tail -n 30 "$WORK/pxed.log" >&2
	echo "--- dnsmasq (last 10 lines):" >&2
	tail -n 10 "$WORK/dnsmasq.log" >&2
	exit 1
fi
say "booted in $((SECONDS - T0))s: $(grep -m1 -a PXED-BOOT-OK "$WORK/serial.log" | tr -d '\r')"
grep -a -E 'DHCPACK' "$WORK/dnsmasq.log" | sed 's/^/  dnsmasq: /' || true

# ---- timeline ---------------------------------------------------------------------------------
say "timeline of $MAC (GET http://192.0.2.1:8080/api/machines/$MAC/timeline)"
json=$(ip netns exec "$NS" curl -s --max-time 5 "http://192.0.2.1:8080/api/machines/$MAC/timeline") ||
	die "timeline request failed"
# Times are RFC 3339 with fractional seconds (Go's time.Time); duration is nanoseconds
# (time.Duration) or a Go duration string; bytes may be 0 or absent.
rows=$(jq -r '
	def secs: capture("^(?<b>[0-9-]+T[0-9:]+)(?<f>\\.[0-9]+)?(?<z>Z|[+-][0-9]{2}:[0-9]{2})?$") as $c
		| ($c.b + "Z" | fromdateiso8601) + (("0" + ($c.f // "")) | tonumber)
		- (if ($c.z // "Z") == "Z" then 0
		   else ($c.z[0:1] + "1" | tonumber) * (($c.z[1:3] | tonumber) * 3600 + ($c.z[4:6] | tonumber) * 60) end);
	def dur: if type == "number" then "\(. / 1e6 * 10 | round / 10)ms" elif type == "string" then . else "" end;
	if type != "array" or length == 0 then error("no events") else . end
	| (.[0].time | secs) as $t0
	| .[] | [((.time | secs) - $t0), .stage, (.detail // "" | tostring | gsub("[\t\n]"; " ")),
	         (if (.bytes // 0) > 0 then (.bytes | tostring) else "" end),
	         (if (.duration // 0) == 0 then "" else (.duration | dur) end)] | @tsv
	' <<<"$json" 2>&1) || { echo "demo: could not read the timeline ($rows); raw answer:" >&2; echo "$json" >&2; exit 1; }
awk -F '\t' 'BEGIN { printf "%-9s  %-14s  %10s  %9s  %s\n", "TIME", "STAGE", "BYTES", "DURATION", "DETAIL" }
	{ printf "+%-8s  %-14s  %10s  %9s  %s\n", sprintf("%.2fs", $1), $2, $4, $5, $3 }' <<<"$rows"
say "done: $(jq length <<<"$json") events"
