#!/bin/sh
# pxed postrm: on purge, remove the data directory (leases, machines). The
# pxed user stays (Debian policy: a uid may own files elsewhere).
set -e
if [ "$1" = purge ]; then
	rm -rf /var/lib/pxed
fi
if [ -d /run/systemd/system ]; then
	systemctl daemon-reload >/dev/null || true
fi
exit 0
