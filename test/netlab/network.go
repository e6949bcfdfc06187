// Package netlab builds a small cluster network out of Linux network namespaces, for tests that send
// real packets through the NetworkPolicies backupguard writes: a "node" namespace (where the control
// plane and kube-router run), one namespace per stand-in pod on the node's bridge, and an "outside"
// namespace with the object store, routed through the node. Everything it creates lives in namespaces
// of its own, deleted on Close; the machine's own network namespace is never changed.
package netlab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The addresses of the lab. The service range is kept clear of the node and outside addresses:
// kube-router lets every destination inside the service range through before it looks at policies.
const (
	NodeName      = "netlab-node"
	PodCIDR       = "10.244.0.0/24"
	BridgeAddress = "10.244.0.1"
	NodeAddress   = "10.99.0.1"
	StoreAddress  = "10.99.0.2"
	ServiceCIDR   = "10.43.0.0/16"
	// KubernetesClusterIP is the first address of ServiceCIDR, which the kube-apiserver gives the
	// default/kubernetes Service.
	KubernetesClusterIP = "10.43.0.1"
	// APIServerPort is the kube-apiserver's port on the node, StorePort the object store's, DNSPort
	// where the node answers DNS.
	APIServerPort = 6443
	StorePort     = 80
	DNSPort       = 53
	// StoreName resolves to StoreAddress through the node's DNS responder.
	StoreName = "s3.netlab.test."
)

// Pod is a stand-in pod: a network namespace with one address on the node's bridge.
type Pod struct {
	// Name is the Pod object's name; Labels its labels.
	Name    string
	Labels  map[string]string
	Address string
	// Namespace is the network namespace.
	Namespace string
	// link is the node end of the veth, on the bridge.
	link string
}

// Network is a lab network; Close deletes it.
type Network struct {
	// Node and Outside are network namespace names.
	Node, Outside string
	Pods          []*Pod
	created       []string
}

// PodSpec asks for one stand-in pod.
type PodSpec struct {
	Name   string
	Labels map[string]string
}

// Create builds the network with one namespace per pod, named after a random id so that runs never
// meet. On error, whatever was created is deleted.
func Create(pods []PodSpec) (network *Network, err error) {
	id := make([]byte, 3)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	prefix := "bgnet-" + hex.EncodeToString(id)
	network = &Network{Node: prefix + "-node", Outside: prefix + "-out"}
	defer func() {
		if err != nil {
			err = errors.Join(err, network.Close())
			network = nil
		}
	}()
	for _, name := range []string{network.Node, network.Outside} {
		if err := network.addNamespace(name); err != nil {
			return network, err
		}
	}
	node := network.Node
	steps := [][]string{
		{"-n", node, "link", "set", "lo", "up"},
		{"-n", node, "link", "add", "cbr0", "type", "bridge"},
		{"-n", node, "addr", "add", BridgeAddress + "/24", "dev", "cbr0"},
		{"-n", node, "link", "set", "cbr0", "up"},
		// Both ends are created straight inside their namespaces, never in the machine's own.
		{"link", "add", "vout", "netns", node, "type", "veth", "peer", "name", "eth0", "netns", network.Outside},
		{"-n", node, "addr", "add", NodeAddress + "/24", "dev", "vout"},
		{"-n", node, "link", "set", "vout", "up"},
		{"-n", network.Outside, "link", "set", "lo", "up"},
		{"-n", network.Outside, "addr", "add", StoreAddress + "/24", "dev", "eth0"},
		{"-n", network.Outside, "link", "set", "eth0", "up"},
		{"-n", network.Outside, "route", "add", "default", "via", NodeAddress},
	}
	for _, step := range steps {
		if err := run("ip", step...); err != nil {
			return network, err
		}
	}
	if err := run("ip", "netns", "exec", node, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"); err != nil {
		return network, err
	}
	for i, spec := range pods {
		pod := &Pod{Name: spec.Name, Labels: spec.Labels, Address: fmt.Sprintf("10.244.0.%d", 10+i),
			Namespace: fmt.Sprintf("%s-pod%d", prefix, i), link: fmt.Sprintf("vpod%d", i)}
		if err := network.addNamespace(pod.Namespace); err != nil {
			return network, err
		}
		steps := [][]string{
			{"link", "add", pod.link, "netns", node, "type", "veth", "peer", "name", "eth0", "netns", pod.Namespace},
			{"-n", node, "link", "set", pod.link, "master", "cbr0", "up"},
			{"-n", pod.Namespace, "link", "set", "lo", "up"},
			{"-n", pod.Namespace, "addr", "add", pod.Address + "/24", "dev", "eth0"},
			{"-n", pod.Namespace, "link", "set", "eth0", "up"},
			{"-n", pod.Namespace, "route", "add", "default", "via", BridgeAddress},
		}
		for _, step := range steps {
			if err := run("ip", step...); err != nil {
				return network, err
			}
		}
		network.Pods = append(network.Pods, pod)
	}
	return network, nil
}

func (n *Network) addNamespace(name string) error {
	if err := run("ip", "netns", "add", name); err != nil {
		return err
	}
	n.created = append(n.created, name)
	return nil
}

// Close ends the processes still running in the lab's namespaces (all started by the test, as the
// namespaces are its own), by PID, and deletes the namespaces, which removes their links, iptables
// rules and ipsets with them.
func (n *Network) Close() error {
	var errs []error
	for _, name := range n.created {
		for _, pid := range namespacePIDs(name) {
			if pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, name := range n.created {
		errs = append(errs, deleteNamespace(name))
	}
	n.created = nil
	return errors.Join(errs...)
}

func namespacePIDs(name string) []int {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for field := range strings.FieldsSeq(string(out)) {
		if pid, err := strconv.Atoi(field); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// deleteNamespace retries for a moment: a namespace whose last process is still exiting is busy.
func deleteNamespace(name string) error {
	var err error
	for range 50 {
		if err = run("ip", "netns", "del", name); err == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return err
}

// Command runs name with args inside network namespace ns. The process is killed if the test process
// dies first, so nothing outlives a crashed test.
func Command(ns, name string, args ...string) *exec.Cmd {
	command := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	command.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return command
}

func run(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}
