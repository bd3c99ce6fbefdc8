// Package packaging holds pxed's Debian package (nfpm.yaml, the systemd
// unit, the sample /etc/pxed/pxed.yaml, the maintainer scripts) and, in its
// tests, the checks of the built .deb: its contents, the unit
// (systemd-analyze verify), lintian when installed, and pxed serving DHCP
// and TFTP as an unprivileged user with only the unit's capabilities.
// scripts/package.sh (`make package`) builds it.
package packaging
