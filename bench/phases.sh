#!/usr/bin/env bash
# bench/phases.sh — where the seconds of one OVMF network boot go, read from a packet capture.
#
# Usage: bench/phases.sh PCAP T0 | bench/phases.sh --header
# PCAP is everything on the boot segment (bench/ovmf-v4v6.sh writes one per boot), T0 the boot's
# start (seconds since the epoch: QEMU's start). Prints one tab-separated line of seconds since T0
# (- when the capture lacks the step); --header prints the column names:
#   v6up    the firmware's IPv6 stack starts: its first packet from :: (MLD report, DAD)
#   rs ra   its first router solicitation, and the first advertisement after it
#   dhcp1   its first DISCOVER (IPv4) or PXE Solicit (IPv6: the one with option 61; EDK II's
#           Ip6Config sends its own Solicit or Information-request on the RA's M or O flag)
#   adv     the first offer/Advertise after dhcp1
#   req     its REQUEST/Request to the address server (port 67/547): the end of its collection
#   boot    the boot service's answer (port 4011)
#   dad     after boot, the firmware's DAD of its DHCPv6 address (its first NS from ::)
#   tftp    the NBP's first TFTP read request
#   i.dhcp  iPXE: its first DHCPv4 message after tftp
#   i.rs    iPXE: its first router solicitation after tftp
#   i.ra    the first router advertisement after i.rs
#   i.dhcp6 iPXE: its Information-request (O flag) or Solicit (M flag)
#   i.rep   the first DHCPv6 Reply or Advertise to it
#   script  the HTTP GET of the iPXE script
#   kernel  the HTTP GET of the kernel
# Needs: tcpdump, awk.
set -euo pipefail
cols="v6up rs ra dhcp1 adv req boot dad tftp i.dhcp i.rs i.ra i.dhcp6 i.rep script kernel"
if [ "$#" = 1 ] && [ "$1" = --header ]; then echo "$cols" | tr ' ' '\t'; exit 0; fi
if [ $# -ne 2 ]; then sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; fi
tcpdump -r "$1" -tt -n -v 2>/dev/null | awk -v t0="$2" -v cols="$cols" '
	function flush() {
		if (pkt != "") classify(ts, pkt)
		pkt = ""
	}
	function set(k, t) { if (!(k in at)) at[k] = t }
	function classify(t, p) {
		if (t < t0) return
		if (p ~ / :: > ff02::1:ff/) set("v6up", t)
		if (p ~ /router solicitation/) {
			set("rs", t)
			if ("tftp" in at) set("i.rs", t)
		}
		if (p ~ /router advertisement/) {
			if ("rs" in at) set("ra", t)
			if ("i.rs" in at) set("i.ra", t)
		}
		fw6 = p ~ /dhcp6 solicit/ && p ~ /opt_61/ && p !~ /user-class/
		# DHCPv4 by direction (a short snap length cuts option 53): the first message of the firmware
		# to port 67 is its DISCOVER, its second its REQUEST.
		v4c = p ~ /\.68 > [0-9.]*\.67: / && !("tftp" in at)
		if (v4c) n4++
		if (fw6 || (v4c && n4 == 1)) set("dhcp1", t)
		if ("dhcp1" in at && !("req" in at) && (p ~ /dhcp6 advertise/ || p ~ /\.67 > [0-9.]*\.68: /)) set("adv", t)
		if ("dhcp1" in at && !("tftp" in at) && (p ~ /dhcp6 request \(/ && p !~ /\.4011: / || (v4c && n4 == 2))) set("req", t)
		if (p ~ /\.4011 > /) set("boot", t)
		if ("boot" in at && p ~ / :: > ff02::1:ff.*neighbor solicitation/) set("dad", t)
		if (p ~ /RRQ/) set("tftp", t)
		if ("tftp" in at && p ~ /\.68 > [0-9.]*\.67: /) set("i.dhcp", t)
		if ("tftp" in at && (p ~ /dhcp6 inf-req/ || (p ~ /dhcp6 solicit/ && p ~ /user-class/))) set("i.dhcp6", t)
		if ("i.dhcp6" in at && (p ~ /dhcp6 reply/ || p ~ /dhcp6 advertise/)) set("i.rep", t)
		if (p ~ /GET [^ ]*script\.ipxe/) set("script", t)
		if (p ~ /GET [^ ]*vmlinuz/) set("kernel", t)
	}
	/^[0-9]+\.[0-9]+ / { flush(); ts = $1; pkt = $0; next }
	{ pkt = pkt " " $0 }
	END {
		flush()
		n = split(cols, c, " ")
		for (i = 1; i <= n; i++) {
			v = (c[i] in at) ? sprintf("%.2f", at[c[i]] - t0) : "-"
			printf "%s%s", v, (i < n ? "\t" : "\n")
		}
	}'
