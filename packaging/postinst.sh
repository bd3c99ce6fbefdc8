#!/bin/sh
# pxed postinst: the pxed system user and group, the boot directory.
set -e
if [ "$1" = configure ]; then
	if ! getent group pxed >/dev/null; then
		addgroup --system --quiet pxed
	fi
	if ! getent passwd pxed >/dev/null; then
		adduser --system --quiet --ingroup pxed --no-create-home --home /var/lib/pxed \
			--shell /usr/sbin/nologin --gecos "pxed network boot server" pxed
	fi
	# data_dir (systemd's StateDirectory= also creates it at start)
	install -d -o pxed -g pxed -m 0750 /var/lib/pxed
	# boot_dir of the sample configuration: the administrator's files
	[ -d /srv/pxed ] || install -d -m 0755 /srv/pxed
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
	if [ -n "$2" ]; then
		# an upgrade: restart a running pxed on the new binary
		systemctl try-restart pxed.service >/dev/null || true
	fi
fi
exit 0
