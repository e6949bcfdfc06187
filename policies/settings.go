package policies

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/backupguard/backupguard/longhorn"
)

// LonghornSettings are the values of the Longhorn Settings that RecurringJob validation depends on.
type LonghornSettings struct {
	RecurringJobMaxRetention             int
	AllowRecurringJobWhileVolumeDetached bool
}

// LonghornSettingsFrom reads the Settings found in the cluster (nil when absent, as before Longhorn has
// written its defaults). An unreadable value falls back to Longhorn's default with a warning rather than
// blocking every RecurringJob over a Setting the user cannot fix from Git.
func LonghornSettingsFrom(maxRetention, allowWhileDetached *longhorn.Setting) (LonghornSettings, []string) {
	settings := LonghornSettings{RecurringJobMaxRetention: DefaultRecurringJobMaxRetention}
	var warnings []string
	if maxRetention != nil {
		value := settingValue(maxRetention.Value)
		if number, err := strconv.Atoi(value); err == nil && number >= 1 && number <= HardMaxRetention {
			settings.RecurringJobMaxRetention = number
		} else {
			warnings = append(warnings, fmt.Sprintf("the Longhorn setting %s has value %q, which is not a number from 1 to %d; using Longhorn's default %d",
				longhorn.SettingRecurringJobMaxRetention, maxRetention.Value, HardMaxRetention, DefaultRecurringJobMaxRetention))
		}
	}
	if allowWhileDetached != nil {
		value := settingValue(allowWhileDetached.Value)
		if allow, err := strconv.ParseBool(value); err == nil {
			settings.AllowRecurringJobWhileVolumeDetached = allow
		} else {
			warnings = append(warnings, fmt.Sprintf("the Longhorn setting %s has value %q, which is not true or false; using Longhorn's default false",
				longhorn.SettingAllowRecurringJobWhileVolumeDetached, allowWhileDetached.Value))
		}
	}
	return settings, warnings
}

// OfflineLonghornSettings are the config's stand-ins for the cluster's Settings.
func OfflineLonghornSettings(config *Config) LonghornSettings {
	return LonghornSettings{
		RecurringJobMaxRetention:             *config.Longhorn.Settings.RecurringJobMaxRetention,
		AllowRecurringJobWhileVolumeDetached: *config.Longhorn.Settings.AllowRecurringJobWhileVolumeDetached,
	}
}

// settingValue unwraps the per-data-engine form that Longhorn v1.8+ allows ({"v1":"true","v2":"false"}),
// taking the v1 engine's value, the one recurring jobs of v1 volumes follow.
func settingValue(value string) string {
	trimmed := strings.TrimSpace(value)
	if !strings.HasPrefix(trimmed, "{") {
		return trimmed
	}
	var perEngine map[string]string
	if err := json.Unmarshal([]byte(trimmed), &perEngine); err != nil {
		return trimmed
	}
	return strings.TrimSpace(perEngine["v1"])
}
