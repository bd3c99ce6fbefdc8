package dhcp4

import (
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/insomniacslk/dhcp/dhcpv4"

	"pxed/internal/boot"
	"pxed/internal/lease"
)

// bootpSize is a BOOTP message: the fixed header and a 64-byte vendor
// area (RFC 951); a reply to a BOOTP client must fit in it (RFC 1542
// §3.3: the client may not take more).
const bootpSize = 300

// bootp answers a BOOTREQUEST without option 53 (RFC 951, RFC 1542, RFC
// 1534): a BOOTREPLY with the client's reserved address, or, on a subnet
// with BOOTPDynamic, any free address, both bound at once for ever
// (lease.InfiniteLease: a BOOTP client never renews) and durable before
// the reply is sent; siaddr and the file field name the boot file, the
// one of the client's profile for BIOS (a BOOTP client says nothing of
// its architecture). A client with no reservation on a subnet without
// BOOTPDynamic is not answered.
func (f *Full) bootp(req Request, sn *Subnet, res *Result, key lease.ClientKey) Result {
	p := req.Packet
	ctx := req.context()
	mgr := sn.Leases
	if _, reserved := mgr.Reservation(key, p.ClientHWAddr); !reserved && !sn.BOOTPDynamic {
		res.Reason = fmt.Sprintf("bootp: no reservation for %s and bootp_dynamic is off on %v", boot.Normalize(p.ClientHWAddr), sn.prefix())
		return *res
	}
	l, err := mgr.Offer(ctx, req.Deferred, lease.OfferRequest{Key: key, MAC: p.ClientHWAddr})
	switch {
	case errors.Is(err, lease.ErrBusy):
		return busy(*res)
	case errors.Is(err, lease.ErrExhausted):
		res.PoolExhausted = true
		res.Reason = fmt.Sprintf("bootp: no address: pool %v exhausted", sn.prefix())
		return *res
	case err != nil:
		res.Reason = fmt.Sprintf("bootp: %v", err)
		return *res
	}
	d, l, err := mgr.Request(ctx, req.Deferred, lease.RequestRequest{Key: key, MAC: p.ClientHWAddr, Requested: l.Addr,
		Selected: true, LeaseTime: lease.InfiniteLease})
	switch {
	case errors.Is(err, lease.ErrBusy):
		return busy(*res)
	case err != nil:
		res.Reason = fmt.Sprintf("bootp: %v", err)
		return *res
	case d.Action != lease.Ack:
		res.Reason = "bootp: " + d.Reason
		return *res
	}
	reply := newReply(p)
	reply.YourIPAddr = net.IP(l.Addr.AsSlice())
	if l.Hostname != "" {
		reply.UpdateOption(dhcpv4.OptGeneric(dhcpv4.GenericOptionCode(optHostname), []byte(l.Hostname)))
	}
	f.subnetOptions(reply, sn, req, l.Addr)
	reply.Options.Del(dhcpv4.OptionServerIdentifier) // a DHCP option; BOOTP names the server in siaddr
	res.Reason = fmt.Sprintf("bootp %v (no lease end)", l.Addr)
	if bc := snapshot(f.Boot); bc != nil {
		m := res.Machine
		if m.Firmware == boot.FirmwareUnknown {
			m.Firmware, m.Class = boot.FirmwarePXE, "bios"
		}
		plan := bc.Decide(m, req.Server)
		res.Plan = plan
		if plan.Action == boot.ServeNBP && len(plan.BootFile) < 128 {
			reply.ServerIPAddr = net.IP(req.Server.IP.AsSlice())
			reply.ServerHostName = req.Server.IP.String()
			reply.BootFileName = plan.BootFile
			res.Reason += "; boot file " + plan.BootFile
		} else {
			res.Reason += "; no boot file (" + plan.Reason + ")"
		}
	}
	fitBOOTP(reply)
	res.Learn = l.Addr
	res.Reply = reply
	return *res
}

// fitBOOTP drops options, least needed first, until reply fits a BOOTP
// message: the subnet mask, router, hostname and DNS servers stay longest.
func fitBOOTP(reply *dhcpv4.DHCPv4) {
	keep := []uint8{optSubnetMask, optRouter, optHostname, optDNS, optDomain}
	dropUntil(reply, bootpSize, func(c uint8) int {
		if i := slices.Index(keep, c); i >= 0 {
			return i // the mask (rank 0) goes last
		}
		return 1000 + int(c)
	})
}
