package fleet

import (
	"encoding/json"
	"fmt"

	"pxed/internal/boot"
)

// StoredColumns returns how every fleet.Store keeps a machine's labels and
// boot-once in text columns: JSON, "{}" for no labels and "" for no
// boot-once.
func StoredColumns(m Machine) (labels, bootOnce string) {
	labels = "{}"
	if len(m.Labels) > 0 {
		b, _ := json.Marshal(m.Labels) // a map of strings always encodes
		labels = string(b)
	}
	if m.BootOnce != nil {
		b, _ := json.Marshal(m.BootOnce) // strings only
		bootOnce = string(b)
	}
	return labels, bootOnce
}

// SetStoredColumns reads what StoredColumns wrote back into m.
func SetStoredColumns(m *Machine, labels, bootOnce string) error {
	if labels != "" && labels != "{}" {
		if err := json.Unmarshal([]byte(labels), &m.Labels); err != nil {
			return fmt.Errorf("machine %s: labels: %w", m.MAC, err)
		}
	}
	if bootOnce != "" {
		m.BootOnce = &boot.BootOnce{}
		if err := json.Unmarshal([]byte(bootOnce), m.BootOnce); err != nil {
			return fmt.Errorf("machine %s: boot_once: %w", m.MAC, err)
		}
	}
	return nil
}
