// Package e2e boots real firmware (QEMU with SeaBIOS + iPXE, and OVMF) and
// real clients against the pxed binary inside network namespaces. It holds
// only tests; they need root, QEMU and the lab assets (`make assets`).
package e2e
