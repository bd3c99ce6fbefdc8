#!/usr/bin/env bash
# bench/fleet.sh — the API and the event stream while a storm boots: GET /api/machines latency
# with 5,000 machines in the inventory, and whether GET /api/events keeps up.
#
# Usage (root): bench/fleet.sh [--pxed BIN] [--inventory N] [--storm N]
#
# A server namespace (pxed in the server role, 198.18.0.1/15, its inventory in a fresh data dir)
# and a client namespace (198.18.0.2/15) joined by a veth pair; nothing touches the host's
# interfaces. First `pxed storm --clients N` (DHCP only) fills the inventory with --inventory
# machines. Then, while `pxed storm --clients M --fetch` (DHCP, then the NBP over TFTP) boots
# --storm new machines at once: one event stream client (curl -N /api/events) reads every event,
# and GET /api/machines (the whole inventory as JSON) is timed back to back from the client
# namespace. Reported: the storm's time and failures, the API's p50/p99/max and requests made,
# the events the stream delivered against those recorded, and the stream's drops
# (pxed_events_stream_dropped_total).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
PXED_BIN="$REPO/pxed"
INVENTORY=5000
STORM=1000
while [ $# -gt 0 ]; do
	case "$1" in
	--pxed) PXED_BIN="$2"; shift 2 ;;
	--inventory) INVENTORY="$2"; shift 2 ;;
	--storm) STORM="$2"; shift 2 ;;
	*) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
	esac
done
[ "$(id -u)" -eq 0 ] || { echo "fleet.sh: needs root (network namespaces)" >&2; exit 2; }
[ -x "$PXED_BIN" ] || (cd "$REPO" && go build -o "$PXED_BIN" ./cmd/pxed)

TAG=$$
S="pxf-s-$TAG" C="pxf-c-$TAG"
WORK=$(mktemp -d /var/tmp/pxed-bench-fleet.XXXXXX)
PG=""
SSE=""
log() { printf '%s %s\n' "$(date +%T)" "$*" >&2; }
cleanup() {
	[ -z "$SSE" ] || kill "$SSE" 2>/dev/null || true
	if [ -n "$PG" ]; then
		kill -TERM -- "-$PG" 2>/dev/null || true
		sleep 1
		kill -KILL -- "-$PG" 2>/dev/null || true
	fi
	ip netns del "$S" 2>/dev/null || true
	ip netns del "$C" 2>/dev/null || true
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

ip netns add "$S"
ip netns add "$C"
ip link add vs netns "$S" type veth peer name vc netns "$C"
ip -n "$S" addr add 198.18.0.1/15 dev vs
ip -n "$C" addr add 198.18.0.2/15 dev vc
for ns in "$S" "$C"; do ip -n "$ns" link set lo up; done
ip -n "$S" link set vs up
ip -n "$C" link set vc up

API=http://198.18.0.1:8080
setsid ip netns exec "$S" "$PXED_BIN" boot --interface vs --dhcp-range 198.18.1.0-198.19.255.250 \
	--data-dir "$WORK/data" --kernel "$PXED_BIN" --http-addr 198.18.0.1:8080 --tftp-addr 198.18.0.1:69 \
	--log-level warn >"$WORK/pxed.log" 2>&1 &
PG=$!
for _ in $(seq 100); do ip netns exec "$C" curl -sf "$API/healthz" >/dev/null 2>&1 && break; sleep 0.1; done

log "filling the inventory: $INVENTORY machines"
ip netns exec "$C" "$PXED_BIN" storm --interface vc --clients "$INVENTORY" --mac-prefix 02:aa:00 --arch efi-x64,bios \
	--json >"$WORK/fill.json" 2>/dev/null || true
machines() { ip netns exec "$C" curl -sf "$API/api/machines" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))'; }
for _ in $(seq 50); do [ "$(machines)" -ge "$INVENTORY" ] && break; sleep 0.2; done
log "inventory: $(machines) machines"

metric() { ip netns exec "$C" curl -sf "$API/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
dropped0=$(metric pxed_events_stream_dropped_total)
recorded0=$(metric pxed_events_recorded_total)
ip netns exec "$C" curl -sN "$API/api/events" >"$WORK/events.sse" 2>/dev/null &
SSE=$!
sleep 0.5 # the stream connected (a curl that failed has exited)
kill -0 "$SSE" || { echo "fleet.sh: the event stream did not open" >&2; exit 1; }

ip netns exec "$C" "$PXED_BIN" storm --interface vc --clients "$STORM" --mac-prefix 02:bb:00 --arch efi-x64,bios --fetch \
	--json >"$WORK/storm.json" 2>/dev/null &
STORM_PID=$!
: >"$WORK/lat"
while kill -0 "$STORM_PID" 2>/dev/null; do
	ip netns exec "$C" curl -s -o /dev/null -w '%{time_total}\n' "$API/api/machines" >>"$WORK/lat" || true
done
wait "$STORM_PID" || true
sleep 1 # the last events reach the stream
kill "$SSE" 2>/dev/null || true
wait "$SSE" 2>/dev/null || true
SSE=""
dropped1=$(metric pxed_events_stream_dropped_total)
recorded1=$(metric pxed_events_recorded_total)
recorded=$(python3 -c "import sys; print(int(float(sys.argv[2]) - float(sys.argv[1])))" "$recorded0" "$recorded1") # while the stream was open
# Boot events are the data lines of unnamed messages (`event: machine` ones are inventory rows).
streamed=$(awk '/^event: / { named = 1; next } /^data: / { if (!named) n++; named = 0 } END { print n + 0 }' "$WORK/events.sse")

python3 - "$WORK/storm.json" "$WORK/lat" "$recorded" "$streamed" "$(python3 -c "import sys; print(int(float(sys.argv[2]) - float(sys.argv[1])))" "${dropped0:-0}" "${dropped1:-0}")" "$(machines)" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
lat = sorted(float(x) * 1000 for x in open(sys.argv[2]) if x.strip())
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
print(f"storm: {r['booted']} booted, {r['failed']} failed of {r['clients']} in {r['seconds']:.2f} s")
print(f"GET /api/machines ({sys.argv[6]} machines) during the storm: {len(lat)} requests, "
      f"p50 {pct(0.50):.1f} ms, p99 {pct(0.99):.1f} ms, max {lat[-1] if lat else float('nan'):.1f} ms")
print(f"event stream: {sys.argv[4]} events delivered of the {sys.argv[3]} recorded while it was open, "
      f"{sys.argv[5]} dropped (pxed_events_stream_dropped_total)")
EOF
