// Package cluster starts what the e2e suites and the demo run against: a real kube-apiserver and etcd
// (built by test/tools), the test CRDs, the webhook configurations that ship in manifests/, and
// backupguard itself as a separate process, talking over real TLS.
package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// RepoRoot is the repository's top folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ToolsDir returns the folder with kube-apiserver, etcd and kubectl: $BACKUPGUARD_TOOLS_DIR, or what
// test/tools/ensure.sh builds (once; later calls find it cached).
func ToolsDir() (string, error) {
	if dir := os.Getenv("BACKUPGUARD_TOOLS_DIR"); dir != "" {
		return dir, nil
	}
	command := exec.Command("bash", filepath.Join(RepoRoot(), "test", "tools", "ensure.sh"))
	command.Stderr = os.Stderr
	out, err := command.Output()
	if err != nil {
		return "", fmt.Errorf("building the control-plane binaries with test/tools/ensure.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Cluster is a running control plane with backupguard's CRDs and webhook configurations installed.
type Cluster struct {
	Env *envtest.Environment
	// Config is an admin client configuration.
	Config *rest.Config
	// Kubeconfig is the path of an admin kubeconfig file, for kubectl and backupguard.
	Kubeconfig string
	// Kubectl is the path of the real kubectl built by test/tools.
	Kubectl string
	// Dir holds the cluster's files: kubeconfig, backupguard's config and logs.
	Dir string
	// AuditLog is the API server's audit log of every request, at metadata level (empty with NoAudit).
	AuditLog string
	// ServeKubeconfig, when set, is the kubeconfig `backupguard serve` runs with (e.g. one that
	// impersonates the shipped ServiceAccount); ServeArgs are extra flags for it.
	ServeKubeconfig string
	ServeArgs       []string
	// ServeNetNS and ServeHost, when set, run `backupguard serve` inside that network namespace,
	// listening on that address (webhook 9443, metrics 8080, probes 8081), instead of on loopback.
	ServeNetNS, ServeHost string
	// CertDir overrides where serve reads its certificate.
	CertDir string
}

// ServiceAccountUser is the user the shipped ServiceAccount authenticates as.
const ServiceAccountUser = "system:serviceaccount:backupguard-system:backupguard"

// ServiceAccountGroups are the groups a ServiceAccount of backupguard-system belongs to.
var ServiceAccountGroups = []string{"system:serviceaccounts", "system:serviceaccounts:backupguard-system", "system:authenticated"}

// auditPolicy records every request at metadata level, once it is answered. The tests impersonate the
// ServiceAccount, and the audit log names it as the impersonated user of the admin's requests.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived, ResponseStarted]
rules:
  - level: Metadata
`

// Options change how the control plane starts.
type Options struct {
	// APIServerAddress is where the API server listens (default 127.0.0.1); APIServerPort, its port
	// there (default: a free one).
	APIServerAddress string
	APIServerPort    int
	// ExtraCRDDirs are installed besides the test CRDs.
	ExtraCRDDirs []string
	// NextRecurringJob installs Longhorn v1.13's RecurringJob CRD (test/crds/next/recurringjobs.yaml,
	// with spec.retentionPolicy and spec.retainAge) instead of v1.12's.
	NextRecurringJob bool
	// NoWebhooks skips installing manifests/webhook (the caller installs the full manifests itself).
	NoWebhooks bool
	// AggregatorRouting makes the API server reach webhook Services through their endpoints, as it
	// must without kube-proxy.
	AggregatorRouting bool
	// NoAudit leaves the audit log off, for benchmarks that should not pay for it.
	NoAudit bool
	// APIServerArgs set more kube-apiserver flags, e.g. service-cluster-ip-range.
	APIServerArgs map[string]string
	// NoLonghornCRDs starts without the test CRDs (ExtraCRDDirs are still installed), as a cluster
	// where backupguard is installed before Longhorn; InstallLonghornCRDs adds them later.
	NoLonghornCRDs bool
}

// CRDFiles lists the test CRDs a cluster gets: the files directly in test/crds, one per Longhorn kind
// (the CRDs in its subfolders are not among them), with next/recurringjobs.yaml, Longhorn v1.13's
// RecurringJob, in place of recurringjobs.yaml when nextRecurringJob is set.
func CRDFiles(nextRecurringJob bool) ([]string, error) {
	dir := filepath.Join(RepoRoot(), "test", "crds")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no CRDs in %s", dir)
	}
	if nextRecurringJob {
		recurringJobs := slices.Index(files, filepath.Join(dir, "recurringjobs.yaml"))
		if recurringJobs < 0 {
			return nil, fmt.Errorf("no recurringjobs.yaml in %s to replace", dir)
		}
		files[recurringJobs] = filepath.Join(dir, "next", "recurringjobs.yaml")
	}
	return files, nil
}

// Start brings up the control plane. The webhook configurations are installed pointing at
// WebhookAddress, where the caller starts backupguard.
func Start() (*Cluster, error) { return StartWith(Options{}) }

// StartWith brings up the control plane as options say.
func StartWith(options Options) (*Cluster, error) {
	tools, err := ToolsDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "backupguard-cluster-")
	if err != nil {
		return nil, err
	}
	crds, err := CRDFiles(options.NextRecurringJob)
	if err != nil {
		return nil, err
	}
	if options.NoLonghornCRDs {
		crds = nil
	}
	root := RepoRoot()
	policyPath, auditLog := filepath.Join(dir, "audit-policy.yaml"), filepath.Join(dir, "audit.log")
	if err := os.WriteFile(policyPath, []byte(auditPolicy), 0o600); err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: tools,
		CRDDirectoryPaths:     append(crds, options.ExtraCRDDirs...),
		ErrorIfCRDPathMissing: len(crds)+len(options.ExtraCRDDirs) > 0,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			Paths:            []string{filepath.Join(root, "manifests", "webhook")},
			LocalServingHost: "127.0.0.1",
		},
	}
	if options.NoWebhooks {
		env.WebhookInstallOptions.Paths = nil
	}
	apiServer := env.ControlPlane.GetAPIServer()
	// A directory of ours keeps the API server's certificates and keys across RestartAPIServer: envtest
	// makes new ones in a new directory on every start otherwise, which no existing client trusts.
	apiServer.CertDir = filepath.Join(dir, "kube-apiserver")
	if err := os.Mkdir(apiServer.CertDir, 0o700); err != nil {
		return nil, err
	}
	if options.APIServerAddress != "" {
		// envtest picks address and port together unless both are given.
		listener, err := net.Listen("tcp", net.JoinHostPort(options.APIServerAddress, "0"))
		if err != nil {
			return nil, err
		}
		port := listener.Addr().(*net.TCPAddr).Port
		listener.Close()
		if options.APIServerPort != 0 {
			port = options.APIServerPort
		}
		apiServer.SecureServing.ListenAddr.Address = options.APIServerAddress
		apiServer.SecureServing.ListenAddr.Port = fmt.Sprint(port)
	}
	arguments := apiServer.Configure()
	if options.NoAudit {
		auditLog = ""
	} else {
		arguments.Set("audit-policy-file", policyPath).
			Set("audit-log-path", auditLog).
			Set("audit-log-format", "json")
	}
	if options.AggregatorRouting {
		arguments.Set("enable-aggregator-routing", "true")
	}
	for flag, value := range options.APIServerArgs {
		arguments.Set(flag, value)
	}
	config, err := env.Start()
	if err != nil {
		_ = env.Stop()
		return nil, fmt.Errorf("starting kube-apiserver and etcd from %s: %w", tools, err)
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, env.KubeConfig, 0o600); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Cluster{Env: env, Config: config, Kubeconfig: kubeconfig, Kubectl: filepath.Join(tools, "kubectl"), Dir: dir, AuditLog: auditLog}, nil
}

// InstallLonghornCRDs installs the test CRDs (CRDFiles, v1.12's RecurringJob) into a cluster started
// without them, and waits until the API server serves them.
func (c *Cluster) InstallLonghornCRDs() error {
	files, err := CRDFiles(false)
	if err != nil {
		return err
	}
	_, err = envtest.InstallCRDs(c.Config, envtest.CRDInstallOptions{Paths: files, ErrorIfPathMissing: true})
	return err
}

// RestartAPIServer kills the kube-apiserver (etcd goes on running), as a crash or a lost control-plane
// node does, keeps it down for down, and starts it again on the same address with the same
// certificates. It returns how long the API server was unreachable: from the kill until it answers its
// health check again. (envtest's own Stop terminates it gracefully, which here takes over 10 s while it
// drains its watches: longer than a leader's renew deadline, so not the short outage a test wants.)
func (c *Cluster) RestartAPIServer(down time.Duration) (time.Duration, error) {
	apiServer := c.Env.ControlPlane.GetAPIServer()
	process, err := findProcess("kube-apiserver", "--cert-dir="+apiServer.CertDir)
	if err != nil {
		return 0, err
	}
	killed := time.Now()
	if err := process.Kill(); err != nil {
		return 0, fmt.Errorf("killing kube-apiserver: %w", err)
	}
	if err := apiServer.Stop(); err != nil { // reaps it
		return 0, fmt.Errorf("stopping kube-apiserver: %w", err)
	}
	time.Sleep(down)
	if err := apiServer.Start(); err != nil {
		return 0, fmt.Errorf("starting kube-apiserver again: %w", err)
	}
	return time.Since(killed), nil
}

// findProcess finds the one process of a program with the given argument, by /proc.
func findProcess(program, argument string) (*os.Process, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	for _, entry := range entries {
		pid, err := strconv.Atoi(entry.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", entry.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(cmdline), "\x00")
		if filepath.Base(args[0]) == program && slices.Contains(args, argument) {
			return os.FindProcess(pid)
		}
	}
	return nil, fmt.Errorf("no %s process with %s", program, argument)
}

// Stop stops the control plane and removes its files.
func (c *Cluster) Stop() error {
	err := c.Env.Stop()
	return errors.Join(err, os.RemoveAll(c.Dir))
}

// KubectlResult is what one kubectl run printed and how it ended.
type KubectlResult struct {
	Stdout, Stderr string
	ExitCode       int
}

// RunKubectl runs the real kubectl against the cluster, with stdin as its input.
func (c *Cluster) RunKubectl(stdin string, args ...string) KubectlResult {
	command := exec.Command(c.Kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...)
	command.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	command.Stdout, command.Stderr = &stdout, &stderr
	err := command.Run()
	result := KubectlResult{Stdout: stdout.String(), Stderr: stderr.String()}
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		result.ExitCode = exitErr.ExitCode()
	case err != nil:
		result.ExitCode = -1
		result.Stderr += err.Error()
	}
	return result
}

// BuildBackupguard builds the backupguard binary into dir (Go's build cache makes repeats cheap), or
// returns $BACKUPGUARD_BIN when set.
func BuildBackupguard(dir string) (string, error) {
	if binary := os.Getenv("BACKUPGUARD_BIN"); binary != "" {
		return binary, nil
	}
	binary := filepath.Join(dir, "backupguard")
	command := exec.Command("go", "build", "-o", binary, "./cmd/backupguard")
	command.Dir = RepoRoot()
	if out, err := command.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/backupguard: %w\n%s", err, out)
	}
	return binary, nil
}

// CertDir, when set, is where serve reads its serving certificate (default: envtest's).
func (c *Cluster) certDir() string {
	if c.CertDir != "" {
		return c.CertDir
	}
	return c.Env.WebhookInstallOptions.LocalServingCertDir
}

// Backupguard is a running `backupguard serve` process.
type Backupguard struct {
	command      *exec.Cmd
	exited       chan struct{}
	LogPath      string
	MetricsURL   string
	ProbeAddress string
}

// StartBackupguard runs `backupguard serve` on the address the webhook configurations point at, with
// the given config file and extra flags, and waits until it reports ready.
func (c *Cluster) StartBackupguard(ctx context.Context, binary, configPath string, extraArgs ...string) (*Backupguard, error) {
	return c.StartReplica(ctx, binary, configPath, Replica{}, extraArgs...)
}

// Replica sets what differs between replicas of serve run side by side.
type Replica struct {
	// WebhookPort is where this replica's webhook server listens on the webhook configurations' host
	// (default: their port; replicas behind a stand-in for the Service each need one of their own).
	WebhookPort int
	// Kubeconfig, when set, replaces the cluster's for this replica.
	Kubeconfig string
}

// StartReplica runs `backupguard serve` as StartBackupguard does, with what replica sets, and waits
// until it reports ready.
func (c *Cluster) StartReplica(ctx context.Context, binary, configPath string, replica Replica, extraArgs ...string) (*Backupguard, error) {
	process, err := c.LaunchReplica(binary, configPath, replica, extraArgs...)
	if err != nil {
		return nil, err
	}
	if err := process.waitReady(ctx); err != nil {
		process.Stop()
		return nil, fmt.Errorf("%w\n--- backupguard log ---\n%s", err, process.Log())
	}
	return process, nil
}

// LaunchBackupguard runs `backupguard serve` as StartBackupguard does, without waiting for it to be
// ready.
func (c *Cluster) LaunchBackupguard(binary, configPath string, extraArgs ...string) (*Backupguard, error) {
	return c.LaunchReplica(binary, configPath, Replica{}, extraArgs...)
}

// LaunchReplica runs `backupguard serve` with what replica sets, without waiting for it to be ready.
func (c *Cluster) LaunchReplica(binary, configPath string, replica Replica, extraArgs ...string) (*Backupguard, error) {
	webhook := c.Env.WebhookInstallOptions
	webhookHost, webhookPort := webhook.LocalServingHost, webhook.LocalServingPort
	if replica.WebhookPort != 0 {
		webhookPort = replica.WebhookPort
	}
	var metricsAddress, probeAddress string
	if c.ServeHost != "" {
		webhookHost, webhookPort = c.ServeHost, 9443
		metricsAddress, probeAddress = c.ServeHost+":8080", c.ServeHost+":8081"
	} else {
		var err error
		if metricsAddress, err = freeAddress(); err != nil {
			return nil, err
		}
		if probeAddress, err = freeAddress(); err != nil {
			return nil, err
		}
	}
	kubeconfig := c.Kubeconfig
	if c.ServeKubeconfig != "" {
		kubeconfig = c.ServeKubeconfig
	}
	if replica.Kubeconfig != "" {
		kubeconfig = replica.Kubeconfig
	}
	args := append([]string{
		"serve",
		"--config", configPath,
		"--config-poll-interval", "100ms",
		"--kubeconfig", kubeconfig,
		"--cert-dir", c.certDir(),
		"--cert-poll-interval", "100ms",
		"--webhook-host", webhookHost,
		"--webhook-port", fmt.Sprint(webhookPort),
		"--metrics-bind-address", metricsAddress,
		"--health-probe-bind-address", probeAddress,
		// Stopped at once, as before the drain existed, so that every test's cleanup is not 5s longer;
		// a test of the drain passes its own --shutdown-delay, which comes later and wins.
		"--shutdown-delay", "0",
	}, append(append([]string{}, c.ServeArgs...), extraArgs...)...)
	logPath := filepath.Join(c.Dir, fmt.Sprintf("backupguard-%d.log", time.Now().UnixNano()))
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	command := exec.Command(binary, args...)
	if c.ServeNetNS != "" {
		command = exec.Command("ip", append([]string{"netns", "exec", c.ServeNetNS, binary}, args...)...)
	}
	command.Stdout, command.Stderr = logFile, logFile
	if err := command.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	process := &Backupguard{command: command, exited: make(chan struct{}), LogPath: logPath,
		MetricsURL: "http://" + metricsAddress + "/metrics", ProbeAddress: probeAddress}
	go func() {
		_ = command.Wait()
		logFile.Close()
		close(process.exited)
	}()
	return process, nil
}

// Exited tells whether the process has ended.
func (b *Backupguard) Exited() bool {
	select {
	case <-b.exited:
		return true
	default:
		return false
	}
}

func (b *Backupguard) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	ticker := time.NewTicker(50 * time.Millisecond)
	defer ticker.Stop()
	for {
		request, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+b.ProbeAddress+"/readyz", nil)
		if response, err := http.DefaultClient.Do(request); err == nil {
			response.Body.Close()
			if response.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-b.exited:
			return errors.New("backupguard serve exited before it was ready")
		case <-ctx.Done():
			return errors.New("backupguard serve did not become ready within a minute")
		case <-ticker.C:
		}
	}
}

// Probe answers GET url (a probe endpoint, say) with its status code and body, or 0 and the error.
func Probe(url string) (int, string) {
	response, err := http.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer response.Body.Close()
	body, _ := io.ReadAll(response.Body)
	return response.StatusCode, string(body)
}

// Log returns what the process has logged so far.
func (b *Backupguard) Log() string {
	data, _ := os.ReadFile(b.LogPath)
	return string(data)
}

// PID is the process id of serve (of `ip netns exec` when it runs in a network namespace).
func (b *Backupguard) PID() int { return b.command.Process.Pid }

// Kill ends the process with SIGKILL, as a lost node or the OOM killer would: nothing is released,
// and the process's connections drop.
func (b *Backupguard) Kill() {
	_ = b.command.Process.Kill()
	<-b.exited
}

// Terminate sends SIGTERM, as the kubelet does when it deletes the pod, and waits for the process to
// end; it reports how long that took.
func (b *Backupguard) Terminate() time.Duration {
	start := time.Now()
	_ = b.command.Process.Signal(syscall.SIGTERM)
	<-b.exited
	return time.Since(start)
}

// Stop ends the process and waits for it.
func (b *Backupguard) Stop() {
	if b.command.Process != nil {
		_ = b.command.Process.Signal(os.Interrupt)
	}
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		_ = b.command.Process.Kill()
		<-b.exited
	}
}

func freeAddress() (string, error) {
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer listener.Close()
	return listener.Addr().String(), nil
}

// ImpersonatingKubeconfig writes a kubeconfig that acts as user with groups, through the admin's
// impersonation right, and returns its path.
func (c *Cluster) ImpersonatingKubeconfig(user string, groups []string) (string, error) {
	config, err := clientcmd.Load(c.Env.KubeConfig)
	if err != nil {
		return "", err
	}
	for _, authInfo := range config.AuthInfos {
		authInfo.Impersonate = user
		authInfo.ImpersonateGroups = groups
	}
	path := filepath.Join(c.Dir, "impersonating-kubeconfig")
	return path, clientcmd.WriteToFile(*config, path)
}

// LastLines is the last n lines of a log, for a failing test's message.
func LastLines(text string, n int) string {
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
