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
	configPath := filepath.Join(root, "manifests", "examples", "backupguard-config.yaml")
	step("Starting backupguard serve behind manifests/webhook (HTTPS, certificate from envtest's CA) with manifests/examples/backupguard-config.yaml")
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

	step("Recurring-job labels: PVCs get what the config's rules say, as they are created")
	for _, file := range []string{"01-namespace-and-storageclass.yaml", "02-pvcs.yaml"} {
		fmt.Printf("\n$ kubectl apply -f manifests/examples/labels/%s\n", file)
		result := c.RunKubectl("", "apply", "-f", filepath.Join(root, "manifests", "examples", "labels", file))
		fmt.Print(result.Stdout, result.Stderr)
	}
	show(c, "", "get", "pvc", "-n", "shop", "-o", `custom-columns=PVC:.metadata.name,LABELS:.metadata.labels`)

	step("Longhorn creates the Volume as pvc-<uid>: it gets the PVC's recurring labels at once, not 30 s later")
	uid := strings.TrimSpace(c.RunKubectl("", "get", "pvc", "-n", "shop", "postgres-data", "-o", "jsonpath={.metadata.uid}").Stdout)
	volume := fmt.Sprintf("apiVersion: longhorn.io/v1beta2\nkind: Volume\nmetadata:\n  name: pvc-%s\n  namespace: longhorn-system\nspec:\n  numberOfReplicas: 3\n", uid)
	fmt.Printf("$ kubectl create -f - <<< 'Volume pvc-%s'\n", uid)
	result := c.RunKubectl(volume, "create", "-f", "-", "-o", "jsonpath={.metadata.labels}")
	fmt.Printf("%s%s\n", result.Stdout, result.Stderr)

	step("The same files checked offline, as CI would: backupguard validate --config manifests/examples/backupguard-config.yaml --tz Europe/Berlin manifests/examples")
	validate := exec.Command(binary, "validate", "--config", filepath.Join("manifests", "examples", "backupguard-config.yaml"), "--tz", "Europe/Berlin", filepath.Join("manifests", "examples"))
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
