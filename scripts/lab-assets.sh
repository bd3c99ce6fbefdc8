#!/usr/bin/env bash
# lab-assets.sh DIR — build the lab boot assets into DIR (idempotent, fast when already done):
#   DIR/vmlinuz     a Debian 6.1 kernel (newest linux-image-6.1.0-N-amd64 apt can download)
#   DIR/initrd.img  a tiny busybox initramfs (cpio newc, gzip) whose /init prints the marker
#                   line PXED-BOOT-OK and `uname -r` on the console and powers off
#   DIR/loaders/    Debian's signed shim (shimx64.efi) and GRUB (grubx64.efi = grubnetx64),
#                   PXELINUX (pxelinux.0, ldlinux.c32), and GRUB built from Debian's unsigned
#                   GRUB for BIOS (grub/i386-pc/core.0) and UEFI HTTP Boot (grubx64-http.efi),
#                   for the loader tests
#   DIR/README      where they came from
# Called by `make assets`; used by internal/lab (end-to-end QEMU tests) and scripts/demo.sh.
set -euo pipefail

if [[ $# -ne 1 ]]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
DIR=$1
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
SELF=$(readlink -f "$0")
BUSYBOX=${BUSYBOX:-/bin/busybox}
MARKER=PXED-BOOT-OK

log() { echo "lab-assets: $*"; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# ---- kernel ---------------------------------------------------------------------------------
# Candidates: every linux-image-6.1.0-N-amd64 (signed) and -unsigned apt knows, newest N first
# (signed before unsigned for the same N; both ship boot/vmlinuz-6.1.0-N-amd64).
kernel_candidates() {
	apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64(-unsigned)?$' 2>/dev/null |
		awk '{print $1}' |
		awk -F- '{n=$4; s=($0 ~ /-unsigned$/) ? 1 : 0; print n, s, $0}' |
		sort -k1,1nr -k2,2n | awk '{print $3}'
}

fetch_kernel() {
	local cands pkg deb
	cands=$(kernel_candidates)
	if [[ -z $cands ]]; then
		log "apt-cache knows no linux-image-6.1.0-*-amd64; running apt-get update"
		apt-get update -q >/dev/null
		cands=$(kernel_candidates)
	fi
	if [[ -z $cands ]]; then
		echo "lab-assets: no linux-image-6.1.0-*-amd64 package found by apt-cache" >&2
		return 1
	fi
	for pkg in $cands; do
		log "downloading $pkg (apt-get download)"
		if (cd "$work" && apt-get download -q "$pkg" >"$work/download.log" 2>&1); then
			deb=$(ls "$work"/"${pkg}"_*.deb 2>/dev/null | head -n1)
			[[ -n $deb ]] && break
		fi
		log "  $pkg: download failed: $(tail -n1 "$work/download.log")"
		deb=
	done
	if [[ -z ${deb:-} ]]; then
		echo "lab-assets: could not download any kernel package" >&2
		return 1
	fi
	mkdir -p "$work/kpkg"
	dpkg-deb -x "$deb" "$work/kpkg"
	local vmlinuz
	vmlinuz=$(ls "$work"/kpkg/boot/vmlinuz-* | head -n1)
	cp "$vmlinuz" "$DIR/vmlinuz.tmp"
	mv "$DIR/vmlinuz.tmp" "$DIR/vmlinuz"
	KERNEL_PKG="$pkg $(dpkg-deb -f "$deb" Version)"
	KERNEL_FILE=$(basename "$vmlinuz")
	echo "$KERNEL_PKG ($KERNEL_FILE)" >"$DIR/.kernel-origin"
	log "kernel: $DIR/vmlinuz <- $KERNEL_FILE from $KERNEL_PKG"
}

if [[ -s $DIR/vmlinuz && -s $DIR/.kernel-origin ]]; then
	log "kernel: $DIR/vmlinuz already present ($(cat "$DIR/.kernel-origin")), kept"
else
	fetch_kernel
fi

# ---- initramfs ------------------------------------------------------------------------------
build_initrd() {
	if [[ ! -x $BUSYBOX ]]; then
		echo "lab-assets: $BUSYBOX missing: apt-get install busybox-static" >&2
		return 1
	fi
	if command -v ldd >/dev/null && ldd "$BUSYBOX" >/dev/null 2>&1; then
		echo "lab-assets: $BUSYBOX is dynamically linked: apt-get install busybox-static" >&2
		return 1
	fi
	local root=$work/initramfs
	mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc}
	cp "$BUSYBOX" "$root/bin/busybox"
	ln -s busybox "$root/bin/sh"
	# A console node lets the kernel give /init its stdio before devtmpfs is mounted; without
	# root (no mknod) /init reopens /dev/console itself after mounting devtmpfs.
	mknod -m 600 "$root/dev/console" c 5 1 2>/dev/null || true
	mknod -m 666 "$root/dev/null" c 1 3 2>/dev/null || true
	cat >"$root/init" <<EOF
#!/bin/sh
# pxed lab initramfs: prove the kernel and initrd arrived, then power off.
/bin/busybox mkdir -p /proc /sys /dev
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox --install -s /bin
export PATH=/bin:/sbin
exec </dev/console >/dev/console 2>&1
# Before the marker, so that a test that saw the marker has this line too.
if [ -d /sys/firmware/efi ]; then
	# What the kernel found (arch/x86/kernel/setup.c): the Secure Boot test asserts this line.
	sb="pxed-lab: \$(dmesg | grep -o 'Secure boot [a-z]*' | head -n 1)"
	echo "\$sb"
	[ -c /dev/ttyS0 ] && echo "\$sb" >/dev/ttyS0 2>/dev/null
fi
msg="$MARKER kernel=\$(uname -r)"
echo "\$msg"
[ -c /dev/ttyS0 ] && echo "\$msg" >/dev/ttyS0 2>/dev/null
echo "cmdline: \$(cat /proc/cmdline)"
sync
poweroff -f
EOF
	chmod 755 "$root/init"
	(cd "$root" && find . -print0 | LC_ALL=C sort -z |
		cpio --null -o -H newc --owner=0:0 --quiet) | gzip -9 -n >"$DIR/initrd.img.tmp"
	mv "$DIR/initrd.img.tmp" "$DIR/initrd.img"
	echo "busybox $("$BUSYBOX" 2>&1 | head -n1 | awk '{print $2}') from $BUSYBOX ($( (dpkg -S "$BUSYBOX" 2>/dev/null || dpkg -S "$(readlink -f "$BUSYBOX")" 2>/dev/null || echo "unknown package:") | head -n1 | cut -d: -f1))" >"$DIR/.initrd-origin"
	log "initrd: $DIR/initrd.img ($(stat -c %s "$DIR/initrd.img") bytes, $(cat "$DIR/.initrd-origin"))"
}

if [[ -s $DIR/initrd.img && -s $DIR/.initrd-origin && $DIR/initrd.img -nt $SELF ]]; then
	log "initrd: $DIR/initrd.img already present and newer than $(basename "$SELF"), kept"
else
	build_initrd
fi

# ---- loaders --------------------------------------------------------------------------------
# The files pxed's loader profiles hand out, from Debian's packages (apt-get download, no
# install): the Microsoft-signed shim, the Debian-signed network GRUB (shim loads it as
# grubx64.efi from its own directory), PXELINUX and its ldlinux.c32.
LOADER_FILES="shim-signed:usr/lib/shim/shimx64.efi.signed:shimx64.efi
grub-efi-amd64-signed:usr/lib/grub/x86_64-efi-signed/grubnetx64.efi.signed:grubx64.efi
pxelinux:usr/lib/PXELINUX/pxelinux.0:pxelinux.0
syslinux-common:usr/lib/syslinux/modules/bios/ldlinux.c32:ldlinux.c32"

fetch_loaders() {
	local line pkg src dst deb origin=
	mkdir -p "$DIR/loaders" "$work/loaders"
	while IFS=: read -r pkg src dst; do
		log "downloading $pkg (apt-get download)"
		if ! (cd "$work/loaders" && apt-get download -q "$pkg" >"$work/download.log" 2>&1); then
			echo "lab-assets: apt-get download $pkg failed: $(tail -n1 "$work/download.log")" >&2
			return 1
		fi
		deb=$(ls "$work"/loaders/"${pkg}"_*.deb | head -n1)
		rm -rf "$work/x" && dpkg-deb -x "$deb" "$work/x"
		cp "$work/x/$src" "$DIR/loaders/$dst"
		origin+="$dst <- /$src from $pkg $(dpkg-deb -f "$deb" Version)"$'\n'
	done <<<"$LOADER_FILES"
	printf '%s' "$origin" >"$DIR/loaders/.origin"
	log "loaders: $DIR/loaders ($(ls "$DIR/loaders" | tr '\n' ' '))"
}

if [[ -s $DIR/loaders/.origin && -s $DIR/loaders/shimx64.efi && -s $DIR/loaders/grubx64.efi && -s $DIR/loaders/pxelinux.0 && -s $DIR/loaders/ldlinux.c32 ]]; then
	log "loaders: $DIR/loaders already present, kept"
else
	fetch_loaders
fi

# ---- GRUB images built from Debian's unsigned GRUB ------------------------------------------
# Debian ships no GRUB network image for BIOS, and its signed network image for UEFI
# (grubnetx64) has no http module. Both are made with grub-mkimage from grub-common (run from the
# extracted package, not installed: it needs liblzma5 and libdevmapper1.02.1; grub-mknetdir would
# need libefivar too) and the modules of grub-pc-bin and grub-efi-amd64-bin:
#   loaders/grub/i386-pc/core.0  BIOS, prefix /grub, with the modules beside it: the layout of
#                                `grub-mknetdir --net-directory=loaders --subdir=grub`
#   loaders/grubx64-http.efi     UEFI, with http and no prefix: loaded by UEFI HTTP Boot from the
#                                machine's directory, it reads grub.cfg from there
# The modules GRUB needs to read pxed's configuration and boot Linux are built in, so that it
# asks for few files over the network.
GRUB_MODULES="normal linux echo regexp configfile test sleep"

build_grub() {
	local pkg deb origin=
	mkdir -p "$work/grub"
	for pkg in grub-common grub-pc-bin grub-efi-amd64-bin; do
		log "downloading $pkg (apt-get download)"
		if ! (cd "$work/grub" && apt-get download -q "$pkg" >"$work/download.log" 2>&1); then
			echo "lab-assets: apt-get download $pkg failed: $(tail -n1 "$work/download.log")" >&2
			return 1
		fi
		deb=$(ls "$work"/grub/"${pkg}"_*.deb | head -n1)
		dpkg-deb -x "$deb" "$work/grub/x"
		origin+="$pkg $(dpkg-deb -f "$deb" Version), "
	done
	local mkimage=$work/grub/x/usr/bin/grub-mkimage lib=$work/grub/x/usr/lib/grub out=$DIR/loaders
	rm -rf "$out/grub.tmp" && mkdir -p "$out/grub.tmp/i386-pc"
	cp "$lib"/i386-pc/*.mod "$lib"/i386-pc/*.lst "$out/grub.tmp/i386-pc/"
	"$mkimage" -O i386-pc-pxe -d "$lib/i386-pc" -p /grub -o "$out/grub.tmp/i386-pc/core.0" pxe tftp $GRUB_MODULES
	"$mkimage" -O x86_64-efi -d "$lib/x86_64-efi" -p '' -o "$out/grubx64-http.efi.tmp" efinet http tftp $GRUB_MODULES
	rm -rf "$out/grub" && mv "$out/grub.tmp" "$out/grub"
	mv "$out/grubx64-http.efi.tmp" "$out/grubx64-http.efi"
	{
		echo "grub/i386-pc/core.0 <- grub-mkimage -O i386-pc-pxe -p /grub pxe tftp $GRUB_MODULES"
		echo "grubx64-http.efi <- grub-mkimage -O x86_64-efi -p '' efinet http tftp $GRUB_MODULES"
		echo "  from ${origin%, }"
	} >"$out/.grub-origin"
	log "grub: $out/grub/i386-pc/core.0 ($(stat -c %s "$out/grub/i386-pc/core.0") bytes), $out/grubx64-http.efi ($(stat -c %s "$out/grubx64-http.efi") bytes)"
}

if [[ -s $DIR/loaders/grub/i386-pc/core.0 && -s $DIR/loaders/grubx64-http.efi && -s $DIR/loaders/.grub-origin ]]; then
	log "grub: $DIR/loaders/grub/i386-pc/core.0 and grubx64-http.efi already present, kept"
else
	build_grub
fi

# ---- README ---------------------------------------------------------------------------------
cat >"$DIR/README" <<EOF
pxed lab boot assets, written by scripts/lab-assets.sh (make assets). Safe to delete; rerun to rebuild.

vmlinuz     Debian kernel: $(cat "$DIR/.kernel-origin")
            fetched with \`apt-get download\`, extracted with \`dpkg-deb -x\` (boot/vmlinuz-*).
initrd.img  busybox initramfs (cpio newc, gzip): $(cat "$DIR/.initrd-origin").
            /init mounts proc, sys and dev, prints the line "$MARKER kernel=\$(uname -r)" to
            /dev/console and /dev/ttyS0 (boot with console=ttyS0), then runs \`poweroff -f\`.
            On UEFI it also prints "pxed-lab: Secure boot enabled" (or disabled), as dmesg says.
            No kernel modules: nothing is needed after the kernel has booted.
loaders/    $(cat "$DIR/loaders/.origin" "$DIR/loaders/.grub-origin" | sed 's/^/            /' | sed '1s/^ *//')
EOF
log "done: $DIR (vmlinuz, initrd.img, README)"
