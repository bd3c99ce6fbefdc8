package pxe

import (
	"errors"
	"fmt"
)

// Boot menu limits. Option 43 is one DHCP option: its sub-options,
// including the menu (9), the prompt (10) and the boot servers (8), share
// 255 bytes. EDK II keeps at most MaxMenuItems items of a menu
// (PXEBC_MENU_MAX_NUM) and shows MaxMenuDesc bytes of each
// (PXEBC_DISPLAY_MAX_LINE, PxeBcBoot.c).
const (
	MaxVendorOptions = 255
	MaxMenuItems     = 24
	MaxMenuDesc      = 70
)

// Discovery returns the PXE_DISCOVERY_CONTROL byte (sub-option 6,
// PXE 2.1 table 2-1) of the given settings.
func Discovery(noBroadcast, noMulticast, listOnly, useBootFile bool) uint8 {
	var b uint8
	if noBroadcast {
		b |= DiscoveryNoBroadcast
	}
	if noMulticast {
		b |= DiscoveryNoMulticast
	}
	if listOnly {
		b |= DiscoveryListOnly
	}
	if useBootFile {
		b |= DiscoveryUseBootFile
	}
	return b
}

// ErrNoBootItem reports option 43 without sub-option 71.
var ErrNoBootItem = errors.New("pxe: no boot item (option 43 sub-option 71)")

// ParseBootItem returns sub-option 71 of option 43 (b): the boot server
// type and layer a boot server discovery request asks for. Like
// ParseVendorOptions it takes the last sub-option 71; a wrongly sized 71
// is an error, its absence ErrNoBootItem. Malformed sub-options after the
// last well-formed 71 do not hide it.
func ParseBootItem(b []byte) (BootItem, error) {
	var found *BootItem
	for i := 0; i < len(b); {
		code := b[i]
		if code == subPad {
			i++
			continue
		}
		if code == subEnd {
			break
		}
		if i+1 >= len(b) {
			if found != nil {
				return *found, nil
			}
			return BootItem{}, fmt.Errorf("pxe: option 43 sub-option %d: %w length", code, ErrTruncated)
		}
		n := int(b[i+1])
		if i+2+n > len(b) {
			if found != nil {
				return *found, nil
			}
			return BootItem{}, fmt.Errorf("pxe: option 43 sub-option %d: length %d: %w", code, n, ErrTruncated)
		}
		if code == SubBootItem {
			if n != 4 {
				return BootItem{}, fmt.Errorf("pxe: option 43 sub-option 71: length %d, want 4", n)
			}
			d := b[i+2:]
			found = &BootItem{Type: uint16(d[0])<<8 | uint16(d[1]), Layer: uint16(d[2])<<8 | uint16(d[3])}
		}
		i += 2 + n
	}
	if found == nil {
		return BootItem{}, ErrNoBootItem
	}
	return *found, nil
}

// CheckMenu reports whether v, the option 43 of an offer with a boot
// menu, fits one option and what firmware shows: at most MaxMenuItems
// items of at most MaxMenuDesc printable ASCII bytes each, and all of it
// within MaxVendorOptions bytes.
func CheckMenu(v VendorOptions) error {
	if len(v.Menu) > MaxMenuItems {
		return fmt.Errorf("%d menu items: EDK II shows at most %d", len(v.Menu), MaxMenuItems)
	}
	for _, it := range v.Menu {
		if len(it.Desc) > MaxMenuDesc {
			return fmt.Errorf("menu item %q is %d bytes: firmware shows at most %d", it.Desc, len(it.Desc), MaxMenuDesc)
		}
		if err := printable(it.Desc); err != nil {
			return fmt.Errorf("menu item %q: %w", it.Desc, err)
		}
	}
	if err := printable(v.Prompt); err != nil {
		return fmt.Errorf("prompt %q: %w", v.Prompt, err)
	}
	b, err := v.Marshal()
	if err != nil {
		return err
	}
	if len(b) > MaxVendorOptions {
		return fmt.Errorf("option 43 would be %d bytes, one option holds %d", len(b), MaxVendorOptions)
	}
	return nil
}

// printable reports non-ASCII or control bytes: firmware prints menu text
// byte by byte (EDK II AsciiPrint, iPXE printf).
func printable(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return fmt.Errorf("byte %#02x at %d is not printable ASCII", s[i], i)
		}
	}
	return nil
}
