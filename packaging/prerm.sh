#!/bin/sh
# pxed prerm: stop the service before its binary goes.
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
	systemctl stop pxed.service >/dev/null || true
fi
exit 0
