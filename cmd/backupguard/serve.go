package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/go-logr/logr"
	"github.com/spf13/cobra"
	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/backupguard/backupguard/certs"
	"github.com/backupguard/backupguard/controllers"
	"github.com/backupguard/backupguard/logging"
	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/webhook"
)

type serveOptions struct {
	configPath         string
	configPollInterval time.Duration
	certDir            string
	certPollInterval   time.Duration
	cluster            clusterFlags
	webhookHost        string
	webhookPort        int
	metricsAddress     string
	probeAddress       string
	enableHTTP2        bool
	webhookLimits      webhook.Limits
	shutdownDelay      time.Duration
	leaderElect        bool
	leaderElectionNS   string
	leaderElection     leaderElectionTimings
	logLevel           string
	sync               string
	syncWritesPerSec   float64
	namespace          string
	windowResync       time.Duration
	coverageInterval   time.Duration
	coveragePerVolume  bool
	pprofAddress       string
}

func newServeCommand() *cobra.Command {
	var opts serveOptions
	command := &cobra.Command{
		Use:   "serve --config FILE --cert-dir DIR [flags]",
		Short: "Run the admission webhook and its background loops",
		Long: `Runs the admission webhook over HTTPS, with /metrics, /healthz and /readyz on their own ports. The config
file is reloaded when it changes; a file that does not parse is refused (log line, Event on the pod when
POD_NAME and POD_NAMESPACE are set) and the last good config stays in force.`,
		Args: noArgs,
		RunE: func(command *cobra.Command, _ []string) error {
			return runServe(opts, command.ErrOrStderr())
		},
	}
	flags := command.Flags()
	flags.SortFlags = false
	flags.StringVar(&opts.configPath, "config", "", "backupguard config file (required)")
	flags.DurationVar(&opts.configPollInterval, "config-poll-interval", 10*time.Second, "how often the config file is checked for changes")
	flags.StringVar(&opts.certDir, "cert-dir", "", "directory holding the serving certificate tls.crt and key tls.key, reloaded when they change (required)")
	flags.DurationVar(&opts.certPollInterval, "cert-poll-interval", 5*time.Second, "how often the certificate directory is re-read")
	opts.cluster.addFlags(flags)
	flags.StringVar(&opts.webhookHost, "webhook-host", "", "address the webhook server listens on (default: all)")
	flags.IntVar(&opts.webhookPort, "webhook-port", 9443, "HTTPS port of the webhook server")
	defaults := webhook.DefaultLimits()
	flags.DurationVar(&opts.webhookLimits.ReadHeaderTimeout, "webhook-read-header-timeout", defaults.ReadHeaderTimeout, "how long a client of the webhook server has to complete the TLS handshake and send a request's headers")
	flags.DurationVar(&opts.webhookLimits.ReadTimeout, "webhook-read-timeout", defaults.ReadTimeout, "how long a client of the webhook server has to send a whole request, headers and body")
	flags.DurationVar(&opts.webhookLimits.IdleTimeout, "webhook-idle-timeout", defaults.IdleTimeout, "how long the webhook server keeps an idle kept-alive connection open")
	flags.IntVar(&opts.webhookLimits.MaxHeaderBytes, "webhook-max-header-bytes", defaults.MaxHeaderBytes, "the largest request line and headers the webhook server reads (larger: 431); bodies are limited to 7 MiB")
	flags.DurationVar(&opts.shutdownDelay, "shutdown-delay", 5*time.Second, "on SIGTERM, how long /readyz fails while admission is still served, each connection closed after its next answer, so that the Service moves requests to other replicas first; 0 disables it. terminationGracePeriodSeconds must exceed it plus the graceful shutdown")
	flags.StringVar(&opts.metricsAddress, "metrics-bind-address", ":8080", "address of the Prometheus /metrics endpoint; 0 disables it")
	flags.StringVar(&opts.probeAddress, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flags.BoolVar(&opts.enableHTTP2, "enable-http2", false, "serve webhooks over HTTP/2 too (off: HTTP/2 Rapid Reset, CVE-2023-44487)")
	flags.BoolVar(&opts.leaderElect, "leader-elect", false, "elect a leader among replicas for the background loops (admission is served by every replica)")
	flags.StringVar(&opts.leaderElectionNS, "leader-election-namespace", "", "namespace of the leader-election Lease (default: the pod's namespace)")
	opts.leaderElection.addFlags(flags)
	flags.StringVar(&opts.logLevel, "log-level", "info", "debug, info or error")
	flags.StringVar(&opts.sync, "sync", "on", "label sync for PVCs and Volumes: on, dry-run (only log what it would change) or off")
	flags.Float64Var(&opts.syncWritesPerSec, "sync-writes-per-second", 10, "the most label patches the sync sends per second")
	flags.StringVarP(&opts.namespace, "namespace", "n", defaultNamespace(), "backupguard's own namespace, where the window's ConfigMap lives; $POD_NAMESPACE sets the default")
	flags.StringVar(&opts.pprofAddress, "pprof-bind-address", "", "address of Go's pprof endpoints, for profiling; empty disables them (they reveal internals: keep them on loopback)")
	flags.DurationVar(&opts.windowResync, "window-resync", 30*time.Second, "the longest the window controller goes without re-checking the cluster")
	flags.DurationVar(&opts.coverageInterval, "coverage-interval", 5*time.Minute, "how often the leader computes the coverage report for its metrics and PVC Events; 0 turns it off")
	flags.BoolVar(&opts.coveragePerVolume, "coverage-per-volume-metrics", false, "also export each volume's coverage verdict and last backup time: a series per PVC, for small clusters")
	_ = command.RegisterFlagCompletionFunc("log-level", cobra.FixedCompletions([]string{"debug", "info", "error"}, cobra.ShellCompDirectiveNoFileComp))
	_ = command.RegisterFlagCompletionFunc("sync", cobra.FixedCompletions([]string{"on", "dry-run", "off"}, cobra.ShellCompDirectiveNoFileComp))
	return command
}

func runServe(opts serveOptions, stderr io.Writer) error {
	for _, required := range []struct{ flag, value string }{{"--config", opts.configPath}, {"--cert-dir", opts.certDir}} {
		if required.value == "" {
			return usageError("%s is required", required.flag)
		}
	}
	switch controllers.SyncMode(opts.sync) {
	case controllers.SyncOn, controllers.SyncDryRun, controllers.SyncOff:
	default:
		return usageError("--sync %q: must be on, dry-run or off", opts.sync)
	}
	if err := validateWebhookLimits(opts.webhookLimits); err != nil {
		return err
	}
	if err := opts.leaderElection.validate(); err != nil {
		return err
	}
	if opts.shutdownDelay < 0 {
		return usageError("--shutdown-delay must not be negative")
	}
	if opts.syncWritesPerSec <= 0 {
		return usageError("--sync-writes-per-second must be above 0")
	}
	log, err := logging.New(opts.logLevel, stderr)
	if err != nil {
		return usageError("%v", err)
	}
	ctrl.SetLogger(log)
	draining, stop := setupShutdown(opts.shutdownDelay, log)
	if err := serve(stop, draining, opts, log); err != nil {
		log.Error(err, "backupguard stopped")
		return &exitStatus{code: exitFailure}
	}
	return nil
}

// serve runs until ctx ends. Once draining is cancelled (the first SIGTERM, --shutdown-delay before
// ctx), it fails /readyz and closes each webhook connection after its next answer, still serving
// admission.
func serve(ctx, draining context.Context, opts serveOptions, log logr.Logger) error {
	configFile, err := newConfigFile(opts.configPath, opts.configPollInterval, log.WithName("config"))
	if err != nil {
		return err
	}
	config := configFile.Config()
	// Loaded before anything else, so a good certificate is served from the first request; a bad one
	// only makes the pod unready, never crash-loop.
	certificate := certs.NewWatcher(opts.certDir, opts.certPollInterval, log.WithName("certs"))
	restConfig, err := opts.cluster.restConfig()
	if err != nil {
		return err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return err
	}
	if err := longhorn.AddToScheme(scheme); err != nil {
		return err
	}
	cacheOptions := lookup.CacheOptions(config.Longhorn.Namespace, opts.namespace)
	crds, err := longhornCRDs(scheme, cacheOptions)
	if err != nil {
		return err
	}
	discoveryClient, err := discovery.NewDiscoveryClientForConfig(restConfig)
	if err != nil {
		return err
	}
	// The manager's cache cannot even be created before Longhorn's CRDs are installed (cache.New asks the
	// RESTMapper whether each namespace-restricted kind is namespaced: controller-runtime
	// pkg/cache/cache.go, defaultOpts), so serve waits for them first, with its probes up to say why and
	// its certificate followed.
	gate := newLonghornGate(discoveryClient, crds, log.WithName("longhorn"))
	webhookStarted, cachesStarted := &lateCheck{}, &lateCheck{}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = certificate.Start(ctx) }()
	if err := serveProbes(ctx, opts.probeAddress, map[string]healthz.Checker{"ping": healthz.Ping}, map[string]healthz.Checker{
		"certificate":   certificate.Ready,
		"longhorn-crds": gate.Ready,
		"webhook":       webhookStarted.check,
		"caches":        cachesStarted.check,
		"shutting-down": shuttingDown(draining, opts.shutdownDelay),
	}, log.WithName("probes")); err != nil {
		return fmt.Errorf("serving the health probes: %w", err)
	}
	if err := gate.Wait(ctx); err != nil {
		return nil // stopped while waiting
	}
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                  scheme,
		Metrics:                 metricsserver.Options{BindAddress: opts.metricsAddress},
		HealthProbeBindAddress:  "0", // serveProbes serves them
		PprofBindAddress:        opts.pprofAddress,
		LeaderElection:          opts.leaderElect,
		LeaderElectionID:        "backupguard.io",
		LeaderElectionNamespace: opts.leaderElectionNS,
		// The process exits right after the manager stops, so handing the lease over at once is safe
		// and lets another replica take over without waiting for it to expire.
		LeaderElectionReleaseOnCancel: true,
		LeaseDuration:                 &opts.leaderElection.leaseDuration,
		RenewDeadline:                 &opts.leaderElection.renewDeadline,
		RetryPeriod:                   &opts.leaderElection.retryPeriod,
		WebhookServer: webhook.NewServer(webhook.ServerOptions{
			Host:        opts.webhookHost,
			Port:        opts.webhookPort,
			CertDir:     opts.certDir,
			EnableHTTP2: opts.enableHTTP2,
			Certificate: certificate,
			Limits:      opts.webhookLimits,
			Draining:    draining.Done(),
			Log:         log.WithName("webhook"),
		}),
		Cache:          cacheOptions,
		MapperProvider: lookup.NewRESTMapper,
	})
	if err != nil {
		return fmt.Errorf("setting up the manager: %w", err)
	}
	reportRefusedConfig(configFile, mgr, log)
	if err := mgr.Add(configFile); err != nil {
		return err
	}
	if err := lookup.AddIndexes(ctx, mgr.GetFieldIndexer()); err != nil {
		return fmt.Errorf("indexing the cache: %w", err)
	}
	pods, err := lookup.NewPodIndex(ctx, mgr.GetCache())
	if err != nil {
		return fmt.Errorf("indexing the pods: %w", err)
	}
	// Start every informer now, so readiness waits for them instead of the first admission request.
	for _, watched := range []client.Object{
		&longhorn.Setting{}, &longhorn.RecurringJob{}, &longhorn.Volume{},
		&corev1.PersistentVolumeClaim{}, &corev1.PersistentVolume{}, &corev1.Namespace{}, &storagev1.StorageClass{},
		&corev1.Pod{}, &corev1.Node{},
	} {
		if _, err := mgr.GetCache().GetInformer(ctx, watched); err != nil {
			return fmt.Errorf("watching %T: %w", watched, err)
		}
	}

	server := mgr.GetWebhookServer()
	server.Register(webhook.RecurringJobPath, webhook.Admission(&webhook.RecurringJobValidator{
		Reader:   mgr.GetCache(),
		Config:   configFile.Config,
		Clock:    clock.RealClock{},
		Recorder: mgr.GetEventRecorder("backupguard"),
		Log:      log.WithName("recurringjobs"),
	}))
	reader := lookup.Cache{Client: mgr.GetCache(), Pods: pods}
	server.Register(webhook.PVCPath, webhook.Admission(&webhook.PVCLabeler{Reader: reader, Config: configFile.Config}))
	server.Register(webhook.VolumePath, webhook.Admission(&webhook.VolumeLabeler{Reader: reader}))
	server.Register(webhook.JobPath, webhook.Admission(&webhook.JobPlacer{Reader: reader, Config: configFile.Config}))

	window := &controllers.WindowController{
		Client:    mgr.GetClient(),
		Config:    configFile.Config,
		Clock:     clock.RealClock{},
		Namespace: opts.namespace,
		Recorder:  mgr.GetEventRecorder("backupguard"),
		Log:       log.WithName("window"),
		Resync:    opts.windowResync,
	}
	if err := window.SetupWithManager(ctx, mgr); err != nil {
		return fmt.Errorf("setting up the window controller: %w", err)
	}
	configChanged := make(chan event.GenericEvent, 1)
	configFile.changed = func() {
		window.Kick()
		select {
		case configChanged <- event.GenericEvent{Object: &corev1.ConfigMap{}}:
		default: // a re-check of everything is already pending
		}
	}
	if mode := controllers.SyncMode(opts.sync); mode != controllers.SyncOff {
		sync := &controllers.LabelSync{
			Client:    mgr.GetClient(),
			APIReader: mgr.GetAPIReader(),
			Config:    configFile.Config,
			Mode:      mode,
			Writes:    rate.NewLimiter(rate.Limit(opts.syncWritesPerSec), max(1, int(opts.syncWritesPerSec))),
			Log:       log.WithName("label-sync"),
		}
		if err := sync.SetupWithManager(mgr, configChanged); err != nil {
			return fmt.Errorf("setting up the label sync: %w", err)
		}
	}

	if opts.coverageInterval > 0 {
		if err := mgr.Add(&controllers.CoverageReporter{
			Reader:           lookup.Cache{Client: mgr.GetCache()},
			Config:           configFile.Config,
			Clock:            clock.RealClock{},
			Interval:         opts.coverageInterval,
			Recorder:         mgr.GetEventRecorder("backupguard"),
			Log:              log.WithName("coverage"),
			PerVolumeMetrics: opts.coveragePerVolume,
		}); err != nil {
			return err
		}
	}

	webhookStarted.set(server.StartedChecker())
	cachesStarted.set(cachesSynced(mgr.GetCache()))
	log.Info("starting backupguard", "version", buildVersion(), "webhookPort", opts.webhookPort, "longhornNamespace", config.Longhorn.Namespace)
	return mgr.Start(ctx)
}

// validateWebhookLimits refuses limits the HTTP server would quietly replace: Go takes a zero
// timeout as none, and a header timeout longer than the read timeout as the read timeout.
func validateWebhookLimits(limits webhook.Limits) error {
	for _, limit := range []struct {
		flag  string
		value time.Duration
	}{{"--webhook-read-header-timeout", limits.ReadHeaderTimeout}, {"--webhook-read-timeout", limits.ReadTimeout}, {"--webhook-idle-timeout", limits.IdleTimeout}} {
		if limit.value <= 0 {
			return usageError("%s must be above 0", limit.flag)
		}
	}
	if limits.ReadHeaderTimeout > limits.ReadTimeout {
		return usageError("--webhook-read-header-timeout (%s) must not be longer than --webhook-read-timeout (%s)", limits.ReadHeaderTimeout, limits.ReadTimeout)
	}
	if limits.MaxHeaderBytes < 4096 {
		return usageError("--webhook-max-header-bytes must be at least 4096")
	}
	return nil
}

// defaultNamespace is the pod's namespace from the downward API, else the one the manifests install to.
func defaultNamespace() string {
	if namespace := os.Getenv("POD_NAMESPACE"); namespace != "" {
		return namespace
	}
	return "backupguard-system"
}

func cachesSynced(informers cache.Cache) healthz.Checker {
	return func(req *http.Request) error {
		ctx, cancel := context.WithTimeout(req.Context(), time.Second)
		defer cancel()
		if !informers.WaitForCacheSync(ctx) {
			return errors.New("caches are not synced yet")
		}
		return nil
	}
}

// reportRefusedConfig records an Event on backupguard's own Pod for each refused config file, when the
// Pod is known (POD_NAME and POD_NAMESPACE from the downward API).
func reportRefusedConfig(configFile *configFile, mgr manager.Manager, log logr.Logger) {
	podName, podNamespace := os.Getenv("POD_NAME"), os.Getenv("POD_NAMESPACE")
	if podName == "" || podNamespace == "" {
		return
	}
	recorder := mgr.GetEventRecorder("backupguard")
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: podName, Namespace: podNamespace}}
	configFile.refused = func(err error) {
		recorder.Eventf(pod, nil, corev1.EventTypeWarning, "ConfigRefused", "ReloadConfig", "%v; the last good config stays in force", err)
	}
	log.V(1).Info("config refusals are recorded as Events", "pod", podNamespace+"/"+podName)
}
