package events

// Stages of the fleet (issue 11): the inventory, approval, boot-once,
// check-in and configuration reloads.
const (
	StageMachineNew      Stage = "machine-new"      // a machine was seen for the first time
	StageMachineApproved Stage = "machine-approved" // an operator approved a machine
	StageMachineDenied   Stage = "machine-denied"   // an operator denied a machine
	StageMachineHeld     Stage = "machine-held"     // an unknown machine waits for approval (unknown_machines: hold)
	StageBootOnce        Stage = "boot-once"        // a boot-once profile was set, or served
	StageCheckin         Stage = "checkin"          // the booted system checked in: the install is done
	StageRogueServer     Stage = "rogue-server"     // another DHCP/ProxyDHCP server answered a PXE client
	StageConfigReload    Stage = "config-reload"    // the configuration file was reloaded, or refused
	StageTemplateError   Stage = "template-error"   // a profile's template failed for a machine
)

// Restore puts events kept from an earlier run (oldest first) back on
// their machines' timelines, without logging them or sending them to
// subscribers.
func (l *Log) Restore(evs []Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range evs {
		if e.MAC != "" {
			l.appendLocked(e)
		}
	}
}

// Merge puts events other servers saw (each server's oldest first) on
// their machines' timelines in time order, without logging them or
// sending them to subscribers.
func (l *Log) Merge(evs []Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range evs {
		if e.MAC == "" {
			continue
		}
		l.appendLocked(e)
		m := l.machines[e.MAC]
		if m == nil {
			continue
		}
		ev := m.events
		for i := len(ev) - 1; i > 0 && ev[i].Time.Before(ev[i-1].Time); i-- {
			ev[i], ev[i-1] = ev[i-1], ev[i]
		}
		m.last = ev[len(ev)-1].Time
	}
}
