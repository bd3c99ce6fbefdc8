package client

import "time"

// MachineReport is one simulated machine's boot, step by step
// (StormConfig.PerMachine): where the slow machines of a storm lost their
// time.
type MachineReport struct {
	MAC     string `json:"mac"`
	Profile string `json:"profile"`
	Addr    string `json:"addr,omitempty"`  // the address it leased
	Cause   string `json:"cause,omitempty"` // FailureCause; "" when it booted
	// Steps are its DHCP exchanges and downloads in order.
	Steps []MachineStep `json:"steps"`
	Total float64       `json:"total_s"` // seconds from its start to its end
}

// MachineStep is one DHCP exchange or download of a machine.
type MachineStep struct {
	Stage   string  `json:"stage"`   // "dhcp", StageNBP, StageScript, StageKernel, StageInitrd
	Start   float64 `json:"start_s"` // seconds since the storm began
	Seconds float64 `json:"seconds"`
	Bytes   int64   `json:"bytes,omitempty"`
	// Resent is, for TFTP, the packets the machine sent again after a
	// timeout; for DHCP, its DISCOVER, REQUEST and boot server retries.
	Resent int64 `json:"resent,omitempty"`
	// FirstReply is, for TFTP, the seconds from the request to the
	// server's first answer.
	FirstReply float64 `json:"first_reply_s,omitempty"`
	Blksize    int     `json:"blksize,omitempty"`
	Windowsize int     `json:"windowsize,omitempty"`
	Err        string  `json:"error,omitempty"`
}

// step records one step of m that began at start, when the storm keeps
// per-machine reports.
func (r *stormRun) step(m *machine, s MachineStep, start time.Time) {
	if !r.cfg.PerMachine {
		return
	}
	s.Start = start.Sub(r.t0).Seconds()
	m.rep.Steps = append(m.rep.Steps, s)
}
