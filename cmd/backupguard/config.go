package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/backupguard/backupguard/policies"
)

// loadConfig reads the config file, or returns the defaults when no file is named.
func loadConfig(path string) (*policies.Config, error) {
	if path == "" {
		return policies.DefaultConfig(), nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return policies.ParseConfig(data, path)
}

var configReloads = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "backupguard_config_reloads_total",
	Help: "Config file reloads after a change, by result (applied or refused).",
}, []string{"result"})

func init() { metrics.Registry.MustRegister(configReloads) }

// configFile keeps the config in force and reloads it when the file changes. A file that does not parse
// is refused and the last good config stays in force. It polls the file's content rather than watching
// inotify events, because a mounted ConfigMap changes by swapping symlinks.
type configFile struct {
	path     string
	interval time.Duration
	current  atomic.Pointer[policies.Config]
	lastData []byte
	// unreadable is set while the file cannot be read, so that is reported once, not at every poll.
	unreadable bool
	log        logr.Logger
	// refused is told about each refused file, e.g. to record an Event.
	refused func(err error)
	// changed is told about each applied change, e.g. to re-check every PVC.
	changed func()
}

func newConfigFile(path string, interval time.Duration, log logr.Logger) (*configFile, error) {
	file := &configFile{path: path, interval: interval, log: log, refused: func(error) {}, changed: func() {}}
	config, err := loadConfig(path)
	if err != nil {
		return nil, err
	}
	if path != "" {
		file.lastData, _ = os.ReadFile(path)
	}
	file.current.Store(config)
	return file, nil
}

// Config returns the config in force.
func (f *configFile) Config() *policies.Config { return f.current.Load() }

// Start polls the file until ctx ends; it runs on every replica, since each one serves admission.
func (f *configFile) Start(ctx context.Context) error {
	if f.path == "" {
		<-ctx.Done()
		return nil
	}
	ticker := time.NewTicker(f.interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			f.reload()
		}
	}
}

// NeedLeaderElection is false: every replica needs the current config.
func (f *configFile) NeedLeaderElection() bool { return false }

func (f *configFile) reload() {
	data, err := os.ReadFile(f.path)
	if err != nil {
		if !f.unreadable {
			f.unreadable, f.lastData = true, nil
			f.report(fmt.Errorf("config %s: %w", f.path, err))
		}
		return
	}
	wasUnreadable := f.unreadable
	f.unreadable = false
	if !wasUnreadable && bytes.Equal(data, f.lastData) {
		return
	}
	config, err := policies.ParseConfig(data, f.path)
	if err == nil && config.Longhorn.Namespace != f.Config().Longhorn.Namespace {
		err = fmt.Errorf("config %s: longhorn.namespace changed from %q to %q, which takes a restart", f.path, f.Config().Longhorn.Namespace, config.Longhorn.Namespace)
	}
	if err != nil {
		f.refuse(err, data, wasUnreadable)
		return
	}
	f.lastData = data
	f.current.Store(config)
	configReloads.WithLabelValues("applied").Inc()
	f.log.Info("config reloaded", "file", f.path)
	f.changed()
}

func (f *configFile) refuse(err error, data []byte, afterUnreadable bool) {
	// Report a broken file once, not at every poll.
	if !afterUnreadable && bytes.Equal(data, f.lastData) {
		return
	}
	f.lastData = data
	f.report(err)
}

func (f *configFile) report(err error) {
	configReloads.WithLabelValues("refused").Inc()
	f.log.Error(err, "config file refused; the last good config stays in force", "file", f.path)
	f.refused(err)
}
