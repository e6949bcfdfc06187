package netlab

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// RoleEnv marks a process the test started inside a namespace of the lab (the test binary itself,
// run again): its value, a JSON Role, says what to do instead of running tests.
const RoleEnv = "BACKUPGUARD_NETLAB_ROLE"

// Role is what a process started with RoleEnv does.
type Role struct {
	// Kind is "store" (serve the object store) or "standin" (probe like a Longhorn pod).
	Kind string `json:"kind"`
	// Name is the source name written in the records.
	Name string `json:"name"`
	// Log is the file the records go to.
	Log string `json:"log"`
	// APIServer is the kube-apiserver's node address and port, for a stand-in's direct probe.
	APIServer string `json:"apiServer,omitempty"`
	// Interval is the pause between two rounds of probes.
	Interval time.Duration `json:"interval,omitempty"`
}

// StartRole runs the test binary again inside network namespace ns in role, its output next to the
// role's log; Stop ends it.
func StartRole(ns string, role Role) (*Process, error) {
	encoded, err := json.Marshal(role)
	if err != nil {
		return nil, err
	}
	executable, err := os.Executable()
	if err != nil {
		return nil, err
	}
	command := Command(ns, executable)
	command.Env = append(os.Environ(), RoleEnv+"="+string(encoded))
	return StartProcess(command, role.Log+".out")
}

// Process is a process the test started.
type Process struct {
	command *exec.Cmd
	output  *os.File
	stop    sync.Once
}

// StartProcess runs command, its output into the file at outputPath.
func StartProcess(command *exec.Cmd, outputPath string) (*Process, error) {
	output, err := os.Create(outputPath)
	if err != nil {
		return nil, err
	}
	command.Stdout, command.Stderr = output, output
	if command.SysProcAttr == nil {
		command.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if err := command.Start(); err != nil {
		output.Close()
		return nil, err
	}
	return &Process{command: command, output: output}, nil
}

// Stop ends the process by its PID (SIGTERM, then SIGKILL after 5 s) and waits for it; later calls
// do nothing.
func (p *Process) Stop() { p.stop.Do(p.end) }

func (p *Process) end() {
	exited := make(chan struct{})
	go func() {
		_ = p.command.Wait()
		close(exited)
	}()
	_ = p.command.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(5 * time.Second):
		_ = p.command.Process.Kill()
		<-exited
	}
	p.output.Close()
}

// RunRole does what RoleEnv asks until SIGTERM, and returns the exit code; call it from TestMain when
// RoleEnv is set.
func RunRole() int {
	var role Role
	if err := json.Unmarshal([]byte(os.Getenv(RoleEnv)), &role); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", RoleEnv, err)
		return 2
	}
	records, err := openRecordLog(role.Log)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	switch role.Kind {
	case "store":
		err = serveStore(ctx, records)
	case "standin":
		err = probe(ctx, role, records)
	default:
		err = fmt.Errorf("unknown role %q", role.Kind)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

type connectionKey struct{}

// connection counts the requests answered on one connection.
type connection struct {
	number   int64
	requests atomic.Int64
}

// serveStore answers every request like an S3 bucket listing, and records each one with whether it
// came on a new connection.
func serveStore(ctx context.Context, records *recordLog) error {
	var connections atomic.Int64
	server := &http.Server{
		Addr: net.JoinHostPort(StoreAddress, strconv.Itoa(StorePort)),
		ConnContext: func(ctx context.Context, _ net.Conn) context.Context {
			return context.WithValue(ctx, connectionKey{}, &connection{number: connections.Add(1)})
		},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			conn := r.Context().Value(connectionKey{}).(*connection)
			records.write(Record{Time: time.Now(), Source: "store", Probe: StoreRequest, OK: true,
				Client: r.RemoteAddr, NewConnection: conn.requests.Add(1) == 1, Connection: conn.number})
			w.Header().Set("Content-Type", "application/xml")
			_, _ = io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult><Name>backups</Name><KeyCount>0</KeyCount></ListBucketResult>`)
		}),
	}
	go func() {
		<-ctx.Done()
		_ = server.Close()
	}()
	if err := server.ListenAndServe(); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// probe polls like a Longhorn pod until ctx ends: the store on a new connection and on a kept-alive
// one, the kube-apiserver at its node address and through the ClusterIP (any HTTP answer counts: the
// question is whether the network lets it through), and DNS.
func probe(ctx context.Context, role Role, records *recordLog) error {
	dialer := &net.Dialer{Timeout: time.Second}
	newConnections := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: dialer.DialContext, DisableKeepAlives: true,
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // reachability only
	}}
	keepAlive := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		DialContext: dialer.DialContext, MaxIdleConnsPerHost: 1, IdleConnTimeout: 0,
	}}
	resolver := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return dialer.DialContext(ctx, "udp", net.JoinHostPort(NodeAddress, strconv.Itoa(DNSPort)))
	}}
	store := fmt.Sprintf("http://%s/backups?list-type=2", net.JoinHostPort(StoreAddress, strconv.Itoa(StorePort)))
	get := func(client *http.Client, url string) error {
		request, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		response, err := client.Do(request)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, response.Body)
		return response.Body.Close()
	}
	probes := []struct {
		name string
		run  func() error
	}{
		{ProbeStoreNew, func() error { return get(newConnections, store) }},
		{ProbeStoreKeepAlive, func() error { return get(keepAlive, store) }},
		{ProbeAPIDirect, func() error { return get(newConnections, "https://"+role.APIServer+"/readyz") }},
		{ProbeAPIClusterIP, func() error { return get(newConnections, "https://"+KubernetesClusterIP+":443/readyz") }},
		{ProbeDNS, func() error {
			addresses, err := resolver.LookupHost(ctx, StoreName)
			if err == nil && (len(addresses) != 1 || addresses[0] != StoreAddress) {
				err = fmt.Errorf("%s resolved to %v", StoreName, addresses)
			}
			return err
		}},
	}
	for {
		for _, p := range probes {
			started := time.Now()
			err := p.run()
			if ctx.Err() != nil {
				return nil
			}
			record := Record{Time: started, Source: role.Name, Probe: p.name, OK: err == nil, Took: time.Since(started)}
			if err != nil {
				record.Err = err.Error()
			}
			records.write(record)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(role.Interval):
		}
	}
}
