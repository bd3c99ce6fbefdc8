package lab

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// BootMarker is the line the lab initramfs prints on the console once the kernel runs its /init
// (followed by " kernel=" and `uname -r`); seeing it proves kernel and initrd arrived.
const BootMarker = "PXED-BOOT-OK"

// Assets returns the lab's kernel and initramfs (built by scripts/lab-assets.sh) from $PXED_LAB,
// or else from <repo>/.cache/lab, where <repo> is the nearest parent directory whose go.mod
// declares module pxed. It fails the test (it does not skip: the assets are part of the build)
// telling to run `make assets` when either file is missing.
func Assets(t testing.TB) (kernel, initrd string) {
	t.Helper()
	dir := assetDir(t)
	kernel = filepath.Join(dir, "vmlinuz")
	initrd = filepath.Join(dir, "initrd.img")
	for _, f := range []string{kernel, initrd} {
		if st, err := os.Stat(f); err != nil || st.Size() == 0 {
			t.Fatalf("lab: boot asset %s missing: run `make assets` (scripts/lab-assets.sh %s)", f, dir)
		}
	}
	return kernel, initrd
}

// LoaderAssets returns the directory of Debian's loaders that scripts/lab-assets.sh puts
// beside the kernel (loaders/: shimx64.efi, grubx64.efi, pxelinux.0, ldlinux.c32, GRUB images
// built from Debian's unsigned GRUB, grub/i386-pc/core.0 for BIOS and grubx64-http.efi for UEFI
// HTTP Boot, and .origin and .grub-origin saying which packages they came from). It fails the test, like Assets, when one is missing.
func LoaderAssets(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(assetDir(t), "loaders")
	for _, f := range []string{"shimx64.efi", "grubx64.efi", "pxelinux.0", "ldlinux.c32", "grub/i386-pc/core.0", "grubx64-http.efi"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Fatalf("lab: loader %s missing: run `make assets` (scripts/lab-assets.sh %s)", filepath.Join(dir, f), filepath.Dir(dir))
		}
	}
	return dir
}

// assetDir is $PXED_LAB, or else <repo>/.cache/lab.
func assetDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("PXED_LAB")
	if dir == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatalf("lab: find the lab assets: %v; set PXED_LAB or run `make assets`", err)
		}
		dir = filepath.Join(root, ".cache", "lab")
	}
	return dir
}

// repoRoot walks up from the working directory to the directory holding pxed's go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working directory: %w", err)
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil {
			for _, line := range bytes.Split(b, []byte("\n")) {
				if string(bytes.TrimSpace(line)) == "module pxed" {
					return dir, nil
				}
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod of module pxed above the working directory: %w", os.ErrNotExist)
		}
		dir = parent
	}
}
