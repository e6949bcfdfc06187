// Command demo shows backupguard working end to end: it starts a real kube-apiserver and etcd, runs
// `backupguard serve` behind the shipped webhook configuration, applies the example RecurringJobs with
// the real kubectl and prints what was accepted and each denial, then checks the same files offline.
// With DEMO_KEEP=1 it leaves everything running until interrupted and prints a kubeconfig to use.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/backupguard/backupguard/test/cluster"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo failed:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := cluster.RepoRoot()

	step("Starting a local control plane: the real kube-apiserver and etcd built by test/tools")
	c, err := cluster.Start()
	if err != nil {
		return err
	}
	defer func() {
		step("Tearing down")
		_ = c.Stop()
	}()
	binary, err := cluster.BuildBackupguard(c.Dir)
	if err != nil {
		return err
	}
	configPath := filepath.Join(c.Dir, "config.yaml")
	config := "apiVersion: backupguard.io/v1alpha1\nkind: Config\nlonghorn:\n  namespace: longhorn-system\n"
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		return err
	}
	step("Starting backupguard serve behind manifests/webhook (HTTPS, certificate from envtest's CA)")
	guard, err := c.StartBackupguard(ctx, binary, configPath)
	if err != nil {
		return err
	}
	defer guard.Stop()
	show(c, "", "create", "namespace", "longhorn-system")

	step("Applying the example RecurringJobs with kubectl")
	examples, err := filepath.Glob(filepath.Join(root, "manifests", "examples", "recurringjobs", "*.yaml"))
	if err != nil {
		return err
	}
	for _, example := range examples {
		relative, _ := filepath.Rel(root, example)
		fmt.Printf("\n$ kubectl apply -f %s\n", relative)
		result := c.RunKubectl("", "apply", "-f", example)
		fmt.Print(result.Stdout, indentWarnings(result.Stderr))
		if result.ExitCode == 0 {
			fmt.Println("  => accepted")
		} else {
			fmt.Println("  => denied")
		}
	}

	step("What the cluster holds now")
	show(c, "", "get", "recurringjobs", "--all-namespaces")

	step("The same files checked offline, as CI would: backupguard validate --tz Europe/Berlin manifests/examples/recurringjobs")
	validate := exec.Command(binary, "validate", "--tz", "Europe/Berlin", filepath.Join("manifests", "examples", "recurringjobs"))
	validate.Dir = root
	validate.Stdout, validate.Stderr = os.Stdout, os.Stderr
	err = validate.Run()
	fmt.Printf("exit status: %d (1: something is denied)\n", validate.ProcessState.ExitCode())
	if err != nil && validate.ProcessState.ExitCode() != 1 {
		return err
	}

	if os.Getenv("DEMO_KEEP") == "1" {
		step("Everything keeps running; press Ctrl-C to tear down")
		fmt.Printf("export KUBECONFIG=%s\n%s get recurringjobs -A\nbackupguard log: %s\n", c.Kubeconfig, c.Kubectl, guard.LogPath)
		<-ctx.Done()
	}
	return nil
}

func step(title string) { fmt.Printf("\n==> %s\n", title) }

func show(c *cluster.Cluster, stdin string, args ...string) {
	fmt.Printf("$ kubectl %s\n", strings.Join(args, " "))
	result := c.RunKubectl(stdin, args...)
	fmt.Print(result.Stdout, result.Stderr)
}

func indentWarnings(stderr string) string {
	if stderr == "" {
		return ""
	}
	return strings.TrimRight(stderr, "\n") + "\n"
}
