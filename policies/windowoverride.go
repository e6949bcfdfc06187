package policies

import (
	"fmt"
	"time"
)

// The override's keys in the data of the window's ConfigMap: `backupguard window` writes them and the
// controller reads them, both through ParseOverride and OverrideData.
const (
	OverrideKey       = "override"
	OverrideUntilKey  = "until"
	OverrideReasonKey = "reason"
)

// The override modes as written in the ConfigMap.
const (
	overrideOpen    = "open"
	overrideClose   = "close"
	overrideRelease = "release"
)

// Override is a manual opening or closing that expires by itself, or a release that lasts until it is
// removed.
type Override struct {
	// Open is true for `window open`, false for `window close`.
	Open bool
	// Released is `window release`: no fence at all, with no end, until `window resume`.
	Released bool
	Until    time.Time
	Reason   string
}

// ParseOverride reads the override from the window ConfigMap's data; nil when there is none. A broken
// override is an error and no override: it must not keep the window open, nor closed.
func ParseOverride(data map[string]string) (*Override, error) {
	mode := data[OverrideKey]
	switch mode {
	case "":
		return nil, nil
	case overrideRelease:
		return &Override{Released: true, Reason: data[OverrideReasonKey]}, nil
	case overrideOpen, overrideClose:
	default:
		return nil, fmt.Errorf("override %q: must be %s, %s or %s", mode, overrideOpen, overrideClose, overrideRelease)
	}
	until, err := time.Parse(time.RFC3339, data[OverrideUntilKey])
	if err != nil {
		return nil, fmt.Errorf("override until %q: %w", data[OverrideUntilKey], err)
	}
	return &Override{Open: mode == overrideOpen, Until: until, Reason: data[OverrideReasonKey]}, nil
}

// OverrideData is override as the ConfigMap's data; nil removes the override.
func OverrideData(override *Override) map[string]string {
	if override == nil {
		return nil
	}
	data := map[string]string{OverrideKey: overrideClose, OverrideReasonKey: override.Reason}
	switch {
	case override.Released:
		data[OverrideKey] = overrideRelease
		return data
	case override.Open:
		data[OverrideKey] = overrideOpen
	}
	data[OverrideUntilKey] = override.Until.UTC().Format(time.RFC3339)
	return data
}
