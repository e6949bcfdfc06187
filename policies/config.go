// Package policies holds every decision backupguard makes, as pure functions over typed objects and the
// configuration: no client, no context, no clock (time is a parameter) and no logging. The webhook,
// the background loops and `backupguard validate` all decide through this package, so a manifest gets
// the same verdict in CI as in the cluster.
package policies

import (
	"bytes"
	"fmt"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// ConfigAPIVersion and ConfigKind identify backupguard's configuration file.
const (
	ConfigAPIVersion = "backupguard.io/v1alpha1"
	ConfigKind       = "Config"
)

// Defaults that match a stock Longhorn install.
const (
	DefaultLonghornNamespace        = "longhorn-system"
	DefaultRecurringJobMaxRetention = 100
	// HardMaxRetention is Longhorn's own ceiling for the recurring-job-max-retention Setting.
	HardMaxRetention = 250
)

// Config is backupguard's configuration, shared by `serve` and `validate`.
type Config struct {
	APIVersion string           `json:"apiVersion"`
	Kind       string           `json:"kind"`
	Longhorn   LonghornConfig   `json:"longhorn,omitempty"`
	Labels     LabelsConfig     `json:"labels,omitempty"`
	BackupJobs BackupJobsConfig `json:"backupJobs,omitempty"`
	// RecurringJobs says how RecurringJob rules are enforced.
	RecurringJobs RecurringJobsConfig `json:"recurringJobs,omitempty"`
	// Window is the S3 window; without it Longhorn's egress is never fenced.
	Window *WindowConfig `json:"window,omitempty"`

	labelRules        *LabelRules
	backupJobRules    *BackupJobRules
	recurringJobRules *RecurringJobRules
	window            *Window
}

// RecurringJobRules returns the compiled RecurringJob enforcement settings.
func (c *Config) RecurringJobRules() *RecurringJobRules { return c.recurringJobRules }

// CompiledWindow returns the compiled S3 window, nil when none is configured.
func (c *Config) CompiledWindow() *Window { return c.window }

// BackupJobRules returns the compiled backup-Job settings.
func (c *Config) BackupJobRules() *BackupJobRules { return c.backupJobRules }

// LabelRules returns the compiled label rules.
func (c *Config) LabelRules() *LabelRules { return c.labelRules }

// LonghornConfig describes the Longhorn installation backupguard guards.
type LonghornConfig struct {
	// Namespace is where Longhorn runs and where RecurringJobs must live.
	Namespace string `json:"namespace,omitempty"`
	// CronTimeZone is the zone Longhorn's recurring jobs fire in (default UTC). Longhorn's CronJobs carry
	// no timeZone, so they fire in kube-controller-manager's local zone: UTC on kubeadm and managed
	// clusters, the host's zone on k3s and RKE2 hosts set to a local zone. It places next runs and the
	// window check.
	CronTimeZone string `json:"cronTimeZone,omitempty"`
	// Settings stand in for the cluster's Longhorn Settings when `validate` runs without a cluster.
	// In the cluster the Setting objects of the same names are read instead.
	Settings OfflineSettings `json:"settings,omitempty"`
}

// OfflineSettings are the Longhorn Settings that RecurringJob validation depends on.
type OfflineSettings struct {
	// RecurringJobMaxRetention stands in for the Setting recurring-job-max-retention (default 100).
	RecurringJobMaxRetention *int `json:"recurringJobMaxRetention,omitempty"`
	// AllowRecurringJobWhileVolumeDetached stands in for the Setting
	// allow-recurring-job-while-volume-detached (default false).
	AllowRecurringJobWhileVolumeDetached *bool `json:"allowRecurringJobWhileVolumeDetached,omitempty"`
}

// DefaultConfig is the configuration in force when no file is given.
func DefaultConfig() *Config {
	config := &Config{APIVersion: ConfigAPIVersion, Kind: ConfigKind}
	config.applyDefaults()
	config.labelRules, _ = CompileLabelRules(config.Labels, field.NewPath("labels"))
	config.backupJobRules, _ = CompileBackupJobRules(config.BackupJobs, field.NewPath("backupJobs"))
	config.recurringJobRules, _ = CompileRecurringJobRules(config.RecurringJobs, config.Longhorn, field.NewPath("recurringJobs"))
	return config
}

func (c *Config) applyDefaults() {
	if c.Longhorn.Namespace == "" {
		c.Longhorn.Namespace = DefaultLonghornNamespace
	}
	if c.Longhorn.Settings.RecurringJobMaxRetention == nil {
		maxRetention := DefaultRecurringJobMaxRetention
		c.Longhorn.Settings.RecurringJobMaxRetention = &maxRetention
	}
	if c.Longhorn.Settings.AllowRecurringJobWhileVolumeDetached == nil {
		allow := false
		c.Longhorn.Settings.AllowRecurringJobWhileVolumeDetached = &allow
	}
}

// ParseConfig reads a configuration file strictly: an unknown or duplicated field, a wrong type or a bad
// value is an error that names the field. source names the file in messages.
func ParseConfig(data []byte, source string) (*Config, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("config %s: the file is empty; it needs at least apiVersion: %s and kind: %s", source, ConfigAPIVersion, ConfigKind)
	}
	jsonData, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("config %s: not valid YAML: %w", source, err)
	}
	if string(bytes.TrimSpace(jsonData)) == "null" {
		return nil, fmt.Errorf("config %s: the file holds only comments; it needs at least apiVersion: %s and kind: %s", source, ConfigAPIVersion, ConfigKind)
	}
	config := &Config{}
	strictErrs, err := sigsjson.UnmarshalStrict(jsonData, config)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", source, err)
	}
	if len(strictErrs) > 0 {
		return nil, fmt.Errorf("config %s: %w", source, joinErrors(strictErrs))
	}
	errs := ValidateConfig(config)
	labelRules, ruleErrs := CompileLabelRules(config.Labels, field.NewPath("labels"))
	backupJobRules, jobErrs := CompileBackupJobRules(config.BackupJobs, field.NewPath("backupJobs"))
	window, windowErrs := CompileWindow(config.Window, field.NewPath("window"))
	if errs = append(append(append(errs, ruleErrs...), jobErrs...), windowErrs...); len(errs) > 0 {
		return nil, fmt.Errorf("config %s: %w", source, errs.ToAggregate())
	}
	config.applyDefaults()
	recurringJobRules, recurringJobErrs := CompileRecurringJobRules(config.RecurringJobs, config.Longhorn, field.NewPath("recurringJobs"))
	if len(recurringJobErrs) > 0 {
		return nil, fmt.Errorf("config %s: %w", source, recurringJobErrs.ToAggregate())
	}
	config.recurringJobRules = recurringJobRules
	config.labelRules = labelRules
	config.backupJobRules = backupJobRules
	config.window = window
	return config, nil
}

// ValidateConfig checks the values of a decoded configuration.
func ValidateConfig(config *Config) field.ErrorList {
	var errs field.ErrorList
	if config.APIVersion != ConfigAPIVersion {
		errs = append(errs, field.NotSupported(field.NewPath("apiVersion"), config.APIVersion, []string{ConfigAPIVersion}))
	}
	if config.Kind != ConfigKind {
		errs = append(errs, field.NotSupported(field.NewPath("kind"), config.Kind, []string{ConfigKind}))
	}
	longhornPath := field.NewPath("longhorn")
	if namespace := config.Longhorn.Namespace; namespace != "" {
		for _, msg := range validation.IsDNS1123Label(namespace) {
			errs = append(errs, field.Invalid(longhornPath.Child("namespace"), namespace, msg))
		}
	}
	settingsPath := longhornPath.Child("settings")
	if maxRetention := config.Longhorn.Settings.RecurringJobMaxRetention; maxRetention != nil && (*maxRetention < 1 || *maxRetention > HardMaxRetention) {
		errs = append(errs, field.Invalid(settingsPath.Child("recurringJobMaxRetention"), *maxRetention,
			fmt.Sprintf("must be between 1 and %d, like Longhorn's setting", HardMaxRetention)))
	}
	return errs
}

func joinErrors(errs []error) error {
	var buf bytes.Buffer
	for i, err := range errs {
		if i > 0 {
			buf.WriteString("; ")
		}
		buf.WriteString(err.Error())
	}
	return fmt.Errorf("%s", buf.String())
}
