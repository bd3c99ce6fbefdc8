package api

import (
	"net/http"
	"time"
)

// Rogue is another DHCP or ProxyDHCP server seen answering boot clients on
// one of pxed's interfaces, as GET /api/rogues shows it.
type Rogue struct {
	Server     string    `json:"server"`    // its address (DHCPv4 option 54, else the IP source)
	MAC        string    `json:"mac"`       // the frame's source MAC (a relay agent's when relayed)
	Interface  string    `json:"interface"` // where pxed saw it
	Family     int       `json:"family"`    // 4 or 6
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	Count      uint64    `json:"count"`                 // replies seen
	Kind       string    `json:"kind"`                  // dhcp, dhcp+pxe, proxydhcp (of the last reply)
	Type       string    `json:"type"`                  // offer, ack, bootp, advertise, reply (of the last reply)
	Relayed    bool      `json:"relayed,omitempty"`     // the last reply came through a relay agent
	LastClient string    `json:"last_client,omitempty"` // chaddr of the last reply
	Offered    Offered   `json:"offered"`
}

// Offered is what a rogue server's last reply offered.
type Offered struct {
	YIAddr      string `json:"yiaddr"`       // "" for ProxyDHCP (no address)
	SIAddr      string `json:"siaddr"`       // next server
	File        string `json:"file"`         // boot file (DHCPv6: boot file URL)
	VendorClass string `json:"vendor_class"` // option 60 (PXEClient, HTTPClient) / DHCPv6 option 16
}

// rogues serves GET /api/rogues.
func (h *Handler) rogues(w http.ResponseWriter, r *http.Request) {
	if h.Rogues == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "rogue detection is off (rogue_detection: off, or no DHCP served)"})
		return
	}
	rs := h.Rogues()
	if rs == nil {
		rs = []Rogue{}
	}
	writeJSON(w, http.StatusOK, rs)
}
