package main

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"pxed/internal/dhcp4"
	"pxed/internal/httpboot"
	"pxed/internal/tftp"
)

// TestMetricsRegistered: the DHCP, TFTP and HTTP metrics register without
// a clash, and the DHCPv4 send errors are among them (a reply the kernel
// refuses is otherwise invisible).
func TestMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	registerMetrics(reg, &dhcp4.Server{}, &tftp.Server{}, &httpboot.Handler{})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "pxed_dhcp_send_errors_total" {
			found = true
		}
	}
	if !found {
		t.Fatal("pxed_dhcp_send_errors_total not registered")
	}
}
