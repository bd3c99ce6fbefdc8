package config

// RogueDetectionOn reports whether pxed watches its interfaces for other
// DHCP and ProxyDHCP servers answering boot clients (rogue_detection: on,
// the default; off turns it off).
func (c *Config) RogueDetectionOn() bool { return c.RogueDetection != "off" }

// validateRogue checks rogue_detection.
func (c *Config) validateRogue() Errors {
	switch c.RogueDetection {
	case "", "on", "off":
		return nil
	}
	return Errors{c.errorf("rogue_detection", "%q: write on (the default: report other DHCP servers answering boot clients) or off", c.RogueDetection)}
}
