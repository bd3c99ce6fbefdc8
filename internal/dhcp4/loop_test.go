package dhcp4

import (
	"context"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"

	"pxed/internal/udploop"
)

// inPrivateNetns runs f on an OS thread moved to a new network namespace
// with only its loopback interface (up), so sockets f opens never touch the
// host's. The thread is never returned to the scheduler: it exits with f.
func inPrivateNetns(t testing.TB, f func() error) error {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace (unshare CLONE_NEWNET)")
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // not unlocked: the thread dies with this goroutine
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			errc <- err
			return
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			errc <- err
			return
		}
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
			errc <- err
			return
		}
		errc <- f()
	}()
	return <-errc
}

// TestLoopBatch: packets queued before the loop reads are taken in one
// batch, each valid one is answered to its source, and a malformed or
// truncated packet is counted and dropped without disturbing the rest.
func TestLoopBatch(t *testing.T) {
	const n = 40 // more than one read batch
	var (
		srv    *Server
		socks  []*Socket
		client *net.UDPConn
	)
	err := inPrivateNetns(t, func() error {
		srv = &Server{
			Interfaces: []string{"lo"},
			Ports:      []Port{PortBootServer},
			Responder:  &Proxy{Boot: proxyConfig()},
			ListenAddr: netip.MustParseAddr("127.0.0.1"),
		}
		var err error
		if socks, err = srv.Open(); err != nil {
			return err
		}
		client, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	to := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(PortBootServer)}
	want := map[dhcpv4.TransactionID]bool{}
	send := func(b []byte) {
		t.Helper()
		if _, err := client.WriteToUDP(b, to); err != nil {
			t.Fatal(err)
		}
	}
	send([]byte("not dhcp"))
	send(make([]byte, udploop.MaxPacket+100)) // longer than a read buffer
	for i := range n {
		req := withType(dhcpv4.MessageTypeRequest, edk2Discover(t))
		req.ClientHWAddr = net.HardwareAddr{0x52, 0x54, 0, 0, 1, byte(i)}
		want[req.TransactionID] = true
		send(req.ToBytes())
	}

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		srv.Run(ctx, socks)
	}()
	defer func() {
		cancel()
		wg.Wait()
	}()

	buf := make([]byte, 2048)
	if err := client.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for len(want) > 0 {
		k, err := client.Read(buf)
		if err != nil {
			t.Fatalf("%d replies missing: %v", len(want), err)
		}
		p, err := dhcpv4.FromBytes(buf[:k])
		if err != nil {
			t.Fatalf("reply does not decode: %v", err)
		}
		if !want[p.TransactionID] {
			t.Fatalf("reply with unexpected or repeated xid %v", p.TransactionID)
		}
		if p.MessageType() != dhcpv4.MessageTypeAck || p.BootFileName == "" {
			t.Errorf("reply %v: type %v, file %q; want an ACK with a boot file", p.TransactionID, p.MessageType(), p.BootFileName)
		}
		delete(want, p.TransactionID)
	}
	// A reply is counted once its sendmmsg returns, which may be after the
	// client has read it.
	for deadline := time.Now().Add(5 * time.Second); srv.Stats().Replied < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	st := srv.Stats()
	if st.Received != n+2 || st.Malformed != 2 || st.Replied != n || st.SendErrs != 0 {
		t.Errorf("stats %+v; want %d received, 2 malformed, %d replied, no send errors", st, n+2, n)
	}
}
