package pxe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// PXE vendor sub-option codes carried in option 43 (PXE 2.1 §2.4, table 2-1).
const (
	SubMTFTPAddr       = 1   // PXE_MTFTP_IP_ADDR
	SubMTFTPClientPort = 2   // PXE_MTFTP_CPORT
	SubMTFTPServerPort = 3   // PXE_MTFTP_SPORT
	SubMTFTPTimeout    = 4   // PXE_MTFTP_TMOUT
	SubMTFTPDelay      = 5   // PXE_MTFTP_DELAY
	SubDiscoveryCtl    = 6   // PXE_DISCOVERY_CONTROL
	SubMcastAddr       = 7   // DISCOVERY_MCAST_ADDR
	SubBootServers     = 8   // PXE_BOOT_SERVERS
	SubBootMenu        = 9   // PXE_BOOT_MENU
	SubMenuPrompt      = 10  // PXE_MENU_PROMPT
	SubBootItem        = 71  // PXE_BOOT_ITEM
	subPad             = 0   // padding
	subEnd             = 255 // end of sub-options
)

// Discovery control bits (sub-option 6, PXE 2.1 §2.4 table 2-1).
const (
	DiscoveryNoBroadcast = 1 << 0 // disable broadcast discovery
	DiscoveryNoMulticast = 1 << 1 // disable multicast discovery
	DiscoveryListOnly    = 1 << 2 // only use/accept servers in PXE_BOOT_SERVERS
	DiscoveryUseBootFile = 1 << 3 // boot file name present: download it, no prompt, menu or discovery
)

// BootServer is one entry of sub-option 8: servers of one boot server type.
type BootServer struct {
	Type  uint16
	Addrs []netip.Addr
}

// MenuItem is one entry of sub-option 9.
type MenuItem struct {
	Type uint16 // boot server type; 0 means "boot from local disk"
	Desc string
}

// BootItem is sub-option 71: the boot server type and layer a client asks
// for in boot server discovery, echoed by the server.
type BootItem struct {
	Type  uint16
	Layer uint16
}

// VendorOptions is the decoded content of option 43 of a PXE packet. Fields
// absent from the packet are zero; Has* says which were present.
type VendorOptions struct {
	MTFTPAddr       netip.Addr
	MTFTPClientPort uint16
	MTFTPServerPort uint16
	MTFTPTimeout    uint8
	MTFTPDelay      uint8
	HasMTFTP        bool // all of sub-options 1–5 present (what EDK II requires)

	DiscoveryControl uint8
	HasDiscovery     bool
	McastAddr        netip.Addr
	BootServers      []BootServer
	Menu             []MenuItem
	PromptTimeout    uint8 // seconds; 0 boots the first item at once, 255 shows the menu at once (PXE 2.1 table 2-1)
	Prompt           string
	HasPrompt        bool
	BootItem         *BootItem
	Unknown          map[uint8][]byte // sub-options pxed does not interpret
}

// ErrTruncated reports an option whose length runs past the end of its data.
var ErrTruncated = errors.New("truncated")

// ParseVendorOptions decodes option 43 of a PXE packet.
func ParseVendorOptions(b []byte) (VendorOptions, error) {
	var v VendorOptions
	var mtftp int
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
			return v, fmt.Errorf("pxe: option 43 sub-option %d: %w length", code, ErrTruncated)
		}
		n := int(b[i+1])
		if i+2+n > len(b) {
			return v, fmt.Errorf("pxe: option 43 sub-option %d: length %d: %w", code, n, ErrTruncated)
		}
		d := b[i+2 : i+2+n]
		i += 2 + n
		bad := func(want string) error {
			return fmt.Errorf("pxe: option 43 sub-option %d: length %d, want %s", code, n, want)
		}
		switch code {
		case SubMTFTPAddr:
			if n != 4 {
				return v, bad("4")
			}
			v.MTFTPAddr = netip.AddrFrom4([4]byte(d))
			mtftp |= 1
		case SubMTFTPClientPort, SubMTFTPServerPort:
			if n != 2 {
				return v, bad("2")
			}
			p := binary.BigEndian.Uint16(d)
			if code == SubMTFTPClientPort {
				v.MTFTPClientPort, mtftp = p, mtftp|2
			} else {
				v.MTFTPServerPort, mtftp = p, mtftp|4
			}
		case SubMTFTPTimeout, SubMTFTPDelay:
			if n != 1 {
				return v, bad("1")
			}
			if code == SubMTFTPTimeout {
				v.MTFTPTimeout, mtftp = d[0], mtftp|8
			} else {
				v.MTFTPDelay, mtftp = d[0], mtftp|16
			}
		case SubDiscoveryCtl:
			if n != 1 {
				return v, bad("1")
			}
			v.DiscoveryControl, v.HasDiscovery = d[0], true
		case SubMcastAddr:
			if n != 4 {
				return v, bad("4")
			}
			v.McastAddr = netip.AddrFrom4([4]byte(d))
		case SubBootServers:
			for len(d) > 0 {
				if len(d) < 3 || len(d) < 3+4*int(d[2]) {
					return v, bad("type(2) count(1) count×4 addresses")
				}
				bs := BootServer{Type: binary.BigEndian.Uint16(d)}
				cnt := int(d[2])
				for k := 0; k < cnt; k++ {
					bs.Addrs = append(bs.Addrs, netip.AddrFrom4([4]byte(d[3+4*k:])))
				}
				v.BootServers = append(v.BootServers, bs)
				d = d[3+4*cnt:]
			}
		case SubBootMenu:
			for len(d) > 0 {
				if len(d) < 3 || len(d) < 3+int(d[2]) {
					return v, bad("type(2) len(1) description")
				}
				v.Menu = append(v.Menu, MenuItem{Type: binary.BigEndian.Uint16(d), Desc: string(d[3 : 3+int(d[2])])})
				d = d[3+int(d[2]):]
			}
		case SubMenuPrompt:
			if n < 1 {
				return v, bad("at least 1")
			}
			v.PromptTimeout, v.Prompt, v.HasPrompt = d[0], string(d[1:]), true
		case SubBootItem:
			if n != 4 {
				return v, bad("4")
			}
			v.BootItem = &BootItem{Type: binary.BigEndian.Uint16(d), Layer: binary.BigEndian.Uint16(d[2:])}
		default:
			if v.Unknown == nil {
				v.Unknown = make(map[uint8][]byte)
			}
			v.Unknown[code] = append([]byte(nil), d...)
		}
	}
	v.HasMTFTP = mtftp == 31
	return v, nil
}

// Marshal encodes v as the payload of option 43, ending with sub-option 255.
// It returns an error when a field does not fit its one-byte length.
func (v VendorOptions) Marshal() ([]byte, error) {
	var b []byte
	put := func(code uint8, d []byte) error {
		if len(d) > 255 {
			return fmt.Errorf("pxe: option 43 sub-option %d is %d bytes, max 255", code, len(d))
		}
		b = append(b, code, byte(len(d)))
		b = append(b, d...)
		return nil
	}
	if v.HasMTFTP {
		a := v.MTFTPAddr.As4()
		_ = put(SubMTFTPAddr, a[:])
		_ = put(SubMTFTPClientPort, binary.BigEndian.AppendUint16(nil, v.MTFTPClientPort))
		_ = put(SubMTFTPServerPort, binary.BigEndian.AppendUint16(nil, v.MTFTPServerPort))
		_ = put(SubMTFTPTimeout, []byte{v.MTFTPTimeout})
		_ = put(SubMTFTPDelay, []byte{v.MTFTPDelay})
	}
	if v.HasDiscovery {
		_ = put(SubDiscoveryCtl, []byte{v.DiscoveryControl})
	}
	if v.McastAddr.Is4() {
		a := v.McastAddr.As4()
		_ = put(SubMcastAddr, a[:])
	}
	if len(v.BootServers) > 0 {
		var d []byte
		for _, bs := range v.BootServers {
			if len(bs.Addrs) > 255 {
				return nil, fmt.Errorf("pxe: boot server type %d has %d addresses, max 255", bs.Type, len(bs.Addrs))
			}
			d = binary.BigEndian.AppendUint16(d, bs.Type)
			d = append(d, byte(len(bs.Addrs)))
			for _, a := range bs.Addrs {
				if !a.Is4() {
					return nil, fmt.Errorf("pxe: boot server %s is not IPv4", a)
				}
				a4 := a.As4()
				d = append(d, a4[:]...)
			}
		}
		if err := put(SubBootServers, d); err != nil {
			return nil, err
		}
	}
	if len(v.Menu) > 0 {
		var d []byte
		for _, m := range v.Menu {
			if len(m.Desc) > 255 {
				return nil, fmt.Errorf("pxe: menu item %q is longer than 255 bytes", m.Desc)
			}
			d = binary.BigEndian.AppendUint16(d, m.Type)
			d = append(d, byte(len(m.Desc)))
			d = append(d, m.Desc...)
		}
		if err := put(SubBootMenu, d); err != nil {
			return nil, err
		}
	}
	if v.HasPrompt {
		if err := put(SubMenuPrompt, append([]byte{v.PromptTimeout}, v.Prompt...)); err != nil {
			return nil, err
		}
	}
	if v.BootItem != nil {
		d := binary.BigEndian.AppendUint16(nil, v.BootItem.Type)
		_ = put(SubBootItem, binary.BigEndian.AppendUint16(d, v.BootItem.Layer))
	}
	for code := 0; code < 256; code++ {
		if d, ok := v.Unknown[uint8(code)]; ok {
			if err := put(uint8(code), d); err != nil {
				return nil, err
			}
		}
	}
	return append(b, subEnd), nil
}
