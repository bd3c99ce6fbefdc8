// Command tftpd serves a directory with pxed's TFTP server. It exists for
// bench/tftp.sh and manual interop checks; pxed itself wires the server in.
//
//	tftpd -addr 127.0.0.1:6969 -root DIR [-v] [-cpuprofile FILE]
package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"pxed/internal/tftp"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:6969", "UDP address to listen on")
	root := flag.String("root", ".", "directory to serve")
	verbose := flag.Bool("v", false, "log every transfer")
	maxWin := flag.Int("max-windowsize", 0, "largest windowsize granted (0: 64)")
	mcast := flag.String("multicast", "", "serve RFC 2090 multicast requests from this IPv4 multicast prefix (e.g. 239.255.70.0/24)")
	noGSO := flag.Bool("no-gso", false, "send windows one datagram per system call (the path taken where UDP GSO fails)")
	noShared := flag.Bool("no-shared-port", false, "serve each lockstep transfer from its own socket instead of the shared lockstep engine")
	shards := flag.Int("engine-shards", 0, "goroutines and sockets (on one port) of the shared lockstep engine (0: one)")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file until SIGTERM")
	flag.Parse()
	if flag.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "tftpd: unexpected argument %q\n", flag.Arg(0))
		os.Exit(2)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	srv := &tftp.Server{
		Handler:           tftp.Dir(*root),
		Logger:            slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})),
		MaxWindowsize:     *maxWin,
		DisableGSO:        *noGSO,
		DisableSharedPort: *noShared,
		EngineShards:      *shards,
	}
	if *mcast != "" {
		p, err := netip.ParsePrefix(*mcast)
		srv.Multicast = &tftp.Multicast{Groups: p}
		if err == nil {
			err = srv.Multicast.Validate()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "tftpd: -multicast %q: %v\n", *mcast, err)
			os.Exit(2)
		}
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintf(os.Stderr, "tftpd: %v\n", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintf(os.Stderr, "tftpd: %v\n", err)
			os.Exit(1)
		}
		defer f.Close()
		defer pprof.StopCPUProfile()
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-sig
		srv.Close()
	}()
	err := srv.ListenAndServe(*addr)
	st := srv.Stats()
	fmt.Fprintf(os.Stderr, "tftpd: ok=%d failed=%d aborted=%d refused=%d malformed=%d bytes=%d resent=%d multicast_sessions=%d multicast_bytes=%d\n",
		st.TransfersOK, st.TransfersFailed, st.TransfersAborted, st.Refused, st.Malformed, st.Bytes, st.Resent,
		st.MulticastSessions, st.MulticastBytes)
	if err != nil && err != tftp.ErrServerClosed {
		fmt.Fprintf(os.Stderr, "tftpd: %v\n", err)
		os.Exit(1)
	}
}
