package netlab

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// KubeRouterDir returns the folder with the kube-router binary that test/tools/ensure-kuberouter.sh
// builds (once; later calls find it cached), which also installs iptables and ipset when missing.
func KubeRouterDir(repoRoot string) (string, error) {
	command := exec.Command("bash", filepath.Join(repoRoot, "test", "tools", "ensure-kuberouter.sh"))
	command.Stderr = os.Stderr
	out, err := command.Output()
	if err != nil {
		return "", fmt.Errorf("building kube-router with test/tools/ensure-kuberouter.sh: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// StartKubeRouter runs kube-router's network policy controller alone (no routing, no service proxy,
// no CNI), in the namespace of the calling process, which must be the lab's node namespace, and waits
// until it has installed its chains. Its log goes to logPath.
func StartKubeRouter(dir, kubeconfig, logPath string) (*Process, error) {
	command := exec.Command(filepath.Join(dir, "kube-router"),
		"--kubeconfig="+kubeconfig, "--hostname-override="+NodeName,
		"--run-firewall=true", "--run-router=false", "--run-service-proxy=false", "--enable-cni=false",
		"--service-cluster-ip-range="+ServiceCIDR,
		// Only policy changes drive it in the test; the periodic full sync is left out of the picture.
		"--iptables-sync-period=5m", "--metrics-port=0", "--health-port=20244")
	process, err := StartProcess(command, logPath)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for exec.Command("iptables", "-n", "-L", "KUBE-ROUTER-FORWARD").Run() != nil {
		if time.Now().After(deadline) {
			process.Stop()
			log, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("kube-router installed no chains within 30s:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return process, nil
}

// DNATKubernetesService makes the default/kubernetes ClusterIP reach the kube-apiserver, as
// kube-proxy would, in the calling process's namespace (the node's).
func DNATKubernetesService(apiServerPort string) error {
	return run("iptables", "-t", "nat", "-A", "PREROUTING", "-d", KubernetesClusterIP, "-p", "tcp", "--dport", "443",
		"-j", "DNAT", "--to-destination", NodeAddress+":"+apiServerPort)
}
