package faults

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/backupguard/backupguard/certs/certstest"
)

// service stands for backupguard's Service in front of its replicas, as kube-proxy makes it: each new
// connection goes to one ready endpoint, round robin, and stays there; an endpoint is ready while its
// /readyz answers 200 (probed every probeEvery; a stopped pod's endpoint goes when its probe fails,
// about as soon as the kubelet would report a dead container). A
// connection to an endpoint that refuses it is closed, not retried elsewhere: kube-proxy's iptables and
// IPVS modes do not retry either.
type service struct {
	listener net.Listener

	mu        sync.Mutex
	endpoints []*endpoint
	next      int
	opened    int // connections accepted
	refused   int // connections whose endpoint refused them
	noReady   int // connections that found no ready endpoint
}

type endpoint struct {
	address, readyURL string
	ready             bool
	connections       int
}

const probeEvery = 100 * time.Millisecond

func newService(t *testing.T, address string) *service {
	t.Helper()
	listener, err := net.Listen("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	s := &service{listener: listener}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		listener.Close()
		wg.Wait()
	})
	wg.Go(func() { s.probe(ctx) })
	wg.Go(func() {
		for {
			conn, err := listener.Accept()
			if err != nil {
				return
			}
			go s.forward(conn)
		}
	})
	return s
}

// add makes a replica an endpoint, as the EndpointSlice controller does for a new pod.
func (s *service) add(webhookAddress, probeAddress string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.endpoints = append(s.endpoints, &endpoint{address: webhookAddress, readyURL: "http://" + probeAddress + "/readyz", ready: true})
}

func (s *service) probe(ctx context.Context) {
	// A probe times out after 1s, the kubelet's default timeoutSeconds: a replica slowed down by two
	// shared cores stays an endpoint, while a stopped one refuses the probe at once.
	client := &http.Client{Timeout: time.Second}
	ticker := time.NewTicker(probeEvery)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
		s.mu.Lock()
		endpoints := append([]*endpoint(nil), s.endpoints...)
		s.mu.Unlock()
		for _, e := range endpoints {
			ready := false
			if response, err := client.Get(e.readyURL); err == nil {
				response.Body.Close()
				ready = response.StatusCode == http.StatusOK
			}
			s.mu.Lock()
			e.ready = ready
			s.mu.Unlock()
		}
	}
}

func (s *service) pick() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range s.endpoints {
		e := s.endpoints[s.next%len(s.endpoints)]
		s.next++
		if e.ready {
			e.connections++
			return e.address
		}
	}
	s.noReady++
	return ""
}

func (s *service) forward(client net.Conn) {
	defer client.Close()
	s.mu.Lock()
	s.opened++
	s.mu.Unlock()
	address := s.pick()
	if address == "" {
		return
	}
	backend, err := net.Dial("tcp", address)
	if err != nil {
		s.mu.Lock()
		s.refused++
		s.mu.Unlock()
		return
	}
	defer backend.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(backend, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, backend); done <- struct{}{} }()
	<-done
}

// connections tells how many connections went to each endpoint.
func (s *service) connections() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	counts := map[string]int{}
	for _, e := range s.endpoints {
		counts[e.address] = e.connections
	}
	return counts
}

// accepted tells how many connections the Service has accepted so far.
func (s *service) accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.opened
}

func (s *service) failures() (refused, noReady int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused, s.noReady
}

// issue writes a new leaf, with a new key and a random serial, into dir the way the kubelet updates a
// mounted Secret: the files are links through ..data, which is swapped in one rename. It returns the
// serial.
func issue(t *testing.T, ca *certstest.CA, dir string) *big.Int {
	t.Helper()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM := ca.Serving(t, serial)
	version := fmt.Sprintf("..%d", time.Now().UnixNano())
	if err := os.Mkdir(filepath.Join(dir, version), 0o700); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"tls.crt": certPEM, "tls.key": keyPEM}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, version, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(version, filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	for name := range files {
		if _, err := os.Lstat(filepath.Join(dir, name)); os.IsNotExist(err) {
			if err := os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return serial
}

// servedSerial is the serial of the certificate a webhook server presents, checked against the CA.
func servedSerial(ca *certstest.CA, address string) (*big.Int, error) {
	roots := ca.Pool()
	dialer := &net.Dialer{Timeout: time.Second}
	conn, err := tls.DialWithDialer(dialer, "tcp", address, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber, nil
}
