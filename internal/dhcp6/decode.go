package dhcp6

import (
	"encoding/binary"
	"net"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv6"
	"github.com/insomniacslk/dhcp/iana"
)

// Why pxed decodes the messages a server receives itself: the library's
// decoder (dhcpv6.FromBytes) makes a uio buffer and lexer per option and
// copies every field into a fresh slice: 16 allocations per Solicit and 27
// per Request, ~40 of the ~176 of a Solicit-Advertise-Request-Reply in
// BenchmarkFullSARR, and allocation and GC were ~18 % of pxed's CPU at
// 4,000 exchanges a second (bench/README-dhcp.md, "Round 5"), where the
// issue's target is less CPU per exchange than Kea. fastDecode fills the
// library's own types (the policy reads *dhcpv6.Message throughout) from
// one allocation, a msgArena: a copy of the packet that every byte field
// of the message points into, the Message, its option list, its client
// DUID, IA_NAs and IA Addresses; the options the library keeps in
// unexported types (client and server identifier, elapsed time, option
// request) cost one allocation each through its constructors.
//
// The arena lives as long as anything points into it, so what outlives
// the exchange copies what it keeps (a bound lease's MAC, the handler's
// MAC cache).
//
// It decodes only what it knows to decode exactly as the library does:
// the options of the messages clients send (identifiers, IA_NA, IA
// Address, Status Code, Option Request, Elapsed Time, Rapid Commit, User
// and Vendor Class, Client Architecture) and any option the library has no
// type for (an OptionGeneric), and Relay-Forw and Relay-Repl (RFC 8415
// §9) around them, nested up to hopLimit+1; any other option is parsed by
// the library's ParseOption, anything malformed by the library whole.
// FuzzDecode checks that on every input fastDecode takes, the library
// decodes the same message (reflect.DeepEqual), and that fastDecode never
// panics.

// msgArena holds a decoded message and the parts of it that are not in
// the library's unexported types: one allocation for most messages.
type msgArena struct {
	msg   dhcpv6.Message
	opts  [6]dhcpv6.Option
	llt   dhcpv6.DUIDLLT
	ll    dhcpv6.DUIDLL
	ias   [1]dhcpv6.OptIANA
	iaOpt [1][2]dhcpv6.Option
	addrs [1]dhcpv6.OptIAAddress
	codes [8]dhcpv6.OptionCode // the first option request's
	oro   bool                 // codes is taken
	nIA   uint8
	nAddr uint8
	nDUID uint8 // DUIDs taken from llt (bit 0) and ll (bit 1)
	// raw holds the packet when it fits: clients' messages are ~60–150
	// bytes. The arena is sized for Go's 512-byte size class (the
	// allocation volume sets how often the GC runs).
	raw [128]byte
}

// fastDecode decodes a message as dhcpv6.FromBytes does; false when it
// leaves the message to the library (see above). It never keeps b: the
// message points into a copy.
func fastDecode(b []byte) (dhcpv6.DHCPv6, bool) {
	if len(b) < 4 {
		return nil, false
	}
	a := new(msgArena)
	var own []byte
	if len(b) <= len(a.raw) {
		own = a.raw[:len(b):len(b)]
		copy(own, b)
	} else {
		own = append([]byte(nil), b...)
	}
	return a.decode(own, 0)
}

// decode decodes the message in b, within relays Relay messages.
func (a *msgArena) decode(b []byte, relays int) (dhcpv6.DHCPv6, bool) {
	if len(b) < 4 {
		return nil, false
	}
	switch mt := dhcpv6.MessageType(b[0]); mt {
	case dhcpv6.MessageTypeRelayForward, dhcpv6.MessageTypeRelayReply: // RFC 8415 §9
		if len(b) < 34 || relays > hopLimit {
			return nil, false
		}
		r := &dhcpv6.RelayMessage{MessageType: mt, HopCount: b[1], LinkAddr: net.IP(b[2:18:18]), PeerAddr: net.IP(b[18:34:34])}
		opts, ok := a.relayOptions(b[34:], relays)
		if !ok {
			return nil, false
		}
		r.Options.Options = opts
		return r, true
	}
	if a.msg.Options.Options != nil {
		return nil, false // a second client message: the library's
	}
	a.msg.MessageType = dhcpv6.MessageType(b[0])
	copy(a.msg.TransactionID[:], b[1:4])
	opts, ok := a.options(a.opts[:0:len(a.opts)], b[4:], 0)
	if !ok {
		return nil, false
	}
	a.msg.Options.Options = opts
	return &a.msg, true
}

// relayOptions decodes a relay message's options: the Relay Message
// option (9) holds the message relayed, any other is the library's.
func (a *msgArena) relayOptions(b []byte, relays int) (dhcpv6.Options, bool) {
	list := make(dhcpv6.Options, 0, 4)
	for len(b) >= 4 {
		code, v, rest, ok := nextOption(b)
		if !ok {
			return nil, false
		}
		b = rest
		var o dhcpv6.Option
		if code == dhcpv6.OptionRelayMsg {
			d, ok := a.decode(v, relays+1)
			if !ok {
				return nil, false
			}
			o = dhcpv6.OptRelayMessage(d)
		} else {
			var err error
			if o, err = dhcpv6.ParseOption(code, v); err != nil {
				return nil, false
			}
		}
		list = append(list, o)
	}
	return list, len(b) == 0
}

// options appends the options encoded in b to list, as
// dhcpv6.Options.FromBytes does; depth counts the enclosing options.
func (a *msgArena) options(list dhcpv6.Options, b []byte, depth int) (dhcpv6.Options, bool) {
	for len(b) >= 4 {
		code, v, rest, ok := nextOption(b)
		if !ok {
			return nil, false
		}
		b = rest
		o, ok := a.option(code, v, depth)
		if !ok {
			return nil, false
		}
		list = append(list, o)
	}
	return list, len(b) == 0 // the library rejects 1–3 bytes left over
}

// nextOption splits the option at the start of b (at least 4 bytes) off
// it: its code, its value (capacity cut to its length) and the bytes
// after it; false when b is shorter than the option's length says.
func nextOption(b []byte) (code dhcpv6.OptionCode, v, rest []byte, ok bool) {
	code = dhcpv6.OptionCode(binary.BigEndian.Uint16(b))
	n := int(binary.BigEndian.Uint16(b[2:]))
	if len(b)-4 < n {
		return 0, nil, nil, false
	}
	return code, b[4 : 4+n : 4+n], b[4+n:], true
}

// option decodes one option's value v as dhcpv6.ParseOption does.
func (a *msgArena) option(code dhcpv6.OptionCode, v []byte, depth int) (dhcpv6.Option, bool) {
	switch code {
	case dhcpv6.OptionClientID, dhcpv6.OptionServerID:
		d, ok := a.duid(v)
		if !ok {
			return nil, false
		}
		if code == dhcpv6.OptionClientID {
			return dhcpv6.OptClientID(d), true
		}
		return dhcpv6.OptServerID(d), true
	case dhcpv6.OptionIANA:
		if len(v) < 12 || depth > 0 {
			return nil, false // nested IA_NAs are rare: the library's
		}
		var ia *dhcpv6.OptIANA
		var iaOpts dhcpv6.Options
		if int(a.nIA) < len(a.ias) {
			ia, iaOpts = &a.ias[a.nIA], a.iaOpt[a.nIA][:0:len(a.iaOpt[a.nIA])]
			a.nIA++
		} else {
			ia, iaOpts = &dhcpv6.OptIANA{}, make(dhcpv6.Options, 0, 10)
		}
		copy(ia.IaId[:], v)
		ia.T1 = seconds(v[4:])
		ia.T2 = seconds(v[8:])
		opts, ok := a.options(iaOpts, v[12:], depth+1)
		if !ok {
			return nil, false
		}
		ia.Options.Options = opts
		return ia, true
	case dhcpv6.OptionIAAddr:
		if len(v) < 24 || depth > 1 {
			return nil, false
		}
		var ad *dhcpv6.OptIAAddress
		if int(a.nAddr) < len(a.addrs) {
			ad = &a.addrs[a.nAddr]
			a.nAddr++
		} else {
			ad = &dhcpv6.OptIAAddress{}
		}
		ad.IPv6Addr = net.IP(v[:16:16])
		ad.PreferredLifetime = seconds(v[16:])
		ad.ValidLifetime = seconds(v[20:])
		// The library's option list is never nil (an empty one is
		// common here: no allocation for it).
		opts, ok := a.options(dhcpv6.Options{}, v[24:], depth+1)
		if !ok {
			return nil, false
		}
		ad.Options.Options = opts
		return ad, true
	case dhcpv6.OptionStatusCode:
		if len(v) < 2 {
			return nil, false
		}
		return &dhcpv6.OptStatusCode{StatusCode: iana.StatusCode(binary.BigEndian.Uint16(v)), StatusMessage: string(v[2:])}, true
	case dhcpv6.OptionORO:
		if len(v)%2 != 0 {
			return nil, false
		}
		var codes dhcpv6.OptionCodes
		if len(v)/2 <= len(a.codes) && !a.oro {
			codes = a.codes[: 0 : len(v)/2]
			a.oro = true // a second ORO must not write over the first's
		}
		for i := 0; i < len(v); i += 2 {
			codes.Add(dhcpv6.OptionCode(binary.BigEndian.Uint16(v[i:])))
		}
		if len(codes) == 0 {
			codes = nil
		}
		return dhcpv6.OptRequestedOption(codes...), true
	case dhcpv6.OptionElapsedTime:
		if len(v) != 2 {
			return nil, false
		}
		return dhcpv6.OptElapsedTime(time.Duration(binary.BigEndian.Uint16(v)) * 10 * time.Millisecond), true
	case dhcpv6.OptionUserClass:
		cs, ok := lengthPrefixed(v)
		if !ok || len(v) == 0 {
			return nil, false
		}
		return &dhcpv6.OptUserClass{UserClasses: cs}, true
	case dhcpv6.OptionVendorClass:
		if len(v) < 4 {
			return nil, false
		}
		cs, ok := lengthPrefixed(v[4:])
		if !ok || len(cs) == 0 {
			return nil, false
		}
		return &dhcpv6.OptVendorClass{EnterpriseNumber: binary.BigEndian.Uint32(v), Data: cs}, true
	case dhcpv6.OptionClientArchType:
		if len(v) == 0 || len(v)%2 != 0 {
			return nil, false
		}
		archs := make(iana.Archs, 0, len(v)/2)
		for i := 0; i < len(v); i += 2 {
			archs = append(archs, iana.Arch(binary.BigEndian.Uint16(v[i:])))
		}
		return dhcpv6.OptClientArchType(archs...), true
	case dhcpv6.OptionRapidCommit, dhcpv6.OptionReconfAccept:
		return generic(code, v), true
	}
	if libraryTyped(code) {
		o, err := dhcpv6.ParseOption(code, v)
		return o, err == nil
	}
	return generic(code, v), true
}

// generic is the library's OptionGeneric of an option it has no type
// for: an empty value is nil there.
func generic(code dhcpv6.OptionCode, v []byte) dhcpv6.Option {
	if len(v) == 0 {
		v = nil
	}
	return &dhcpv6.OptionGeneric{OptionCode: code, OptionData: v}
}

// libraryTyped reports whether dhcpv6.ParseOption has a type of its own
// for code (any other is an OptionGeneric).
func libraryTyped(code dhcpv6.OptionCode) bool {
	switch code {
	case dhcpv6.OptionClientID, dhcpv6.OptionServerID, dhcpv6.OptionIANA, dhcpv6.OptionIATA, dhcpv6.OptionIAAddr,
		dhcpv6.OptionORO, dhcpv6.OptionPreference, dhcpv6.OptionElapsedTime, dhcpv6.OptionRelayMsg,
		dhcpv6.OptionStatusCode, dhcpv6.OptionUserClass, dhcpv6.OptionVendorClass, dhcpv6.OptionVendorOpts,
		dhcpv6.OptionInterfaceID, dhcpv6.OptionDNSRecursiveNameServer, dhcpv6.OptionDomainSearchList,
		dhcpv6.OptionIAPD, dhcpv6.OptionIAPrefix, dhcpv6.OptionSNTPServerList, dhcpv6.OptionInformationRefreshTime,
		dhcpv6.OptionRemoteID, dhcpv6.OptionFQDN, dhcpv6.OptionNTPServer, dhcpv6.OptionBootfileURL,
		dhcpv6.OptionBootfileParam, dhcpv6.OptionClientArchType, dhcpv6.OptionNII, dhcpv6.OptionClientLinkLayerAddr,
		dhcpv6.OptionDHCPv4Msg, dhcpv6.OptionDHCP4oDHCP6Server, dhcpv6.Option4RD, dhcpv6.Option4RDMapRule,
		dhcpv6.Option4RDNonMapRule, dhcpv6.OptionRelayPort:
		return true
	}
	return false
}

// duid decodes a DUID as dhcpv6.DUIDFromBytes does; the first of each
// of the common kinds (link-layer, with or without time) is the arena's.
func (a *msgArena) duid(v []byte) (dhcpv6.DUID, bool) {
	if len(v) < 2 {
		return nil, false
	}
	typ, p := dhcpv6.DUIDType(binary.BigEndian.Uint16(v)), v[2:]
	switch typ {
	case dhcpv6.DUID_LLT:
		if len(p) < 6 {
			return nil, false
		}
		d := spare(&a.llt, &a.nDUID, 1)
		d.HWType, d.Time, d.LinkLayerAddr = iana.HWType(binary.BigEndian.Uint16(p)), binary.BigEndian.Uint32(p[2:]), net.HardwareAddr(p[6:])
		return d, true
	case dhcpv6.DUID_LL:
		if len(p) < 2 {
			return nil, false
		}
		d := spare(&a.ll, &a.nDUID, 2)
		d.HWType, d.LinkLayerAddr = iana.HWType(binary.BigEndian.Uint16(p)), net.HardwareAddr(p[2:])
		return d, true
	case dhcpv6.DUID_EN:
		if len(p) < 4 {
			return nil, false
		}
		return &dhcpv6.DUIDEN{EnterpriseNumber: binary.BigEndian.Uint32(p), EnterpriseIdentifier: p[4:]}, true
	case dhcpv6.DUID_UUID:
		if len(p) != 16 {
			return nil, false
		}
		d := &dhcpv6.DUIDUUID{}
		copy(d.UUID[:], p)
		return d, true
	}
	data := p
	if len(data) == 0 {
		data = nil // append([]byte(nil), p...) in the library
	}
	return &dhcpv6.DUIDOpaque{Type: typ, Data: data}, true
}

// spare is the arena's slot the first time (bit not yet set in *used),
// a new T after that.
func spare[T any](slot *T, used *uint8, bit uint8) *T {
	if *used&bit != 0 {
		return new(T)
	}
	*used |= bit
	return slot
}

// lengthPrefixed splits b into its 16-bit length-prefixed parts (user and
// vendor class data, RFC 8415 §21.15, §21.16); false when one runs past
// the end or a byte is left over.
func lengthPrefixed(b []byte) ([][]byte, bool) {
	var out [][]byte
	for len(b) >= 2 {
		n := int(binary.BigEndian.Uint16(b))
		if len(b)-2 < n {
			return nil, false
		}
		out = append(out, b[2:2+n:2+n])
		b = b[2+n:]
	}
	return out, len(b) == 0
}

// seconds is a 32-bit count of seconds (the library's Duration).
func seconds(b []byte) time.Duration {
	return time.Duration(binary.BigEndian.Uint32(b)) * time.Second
}
