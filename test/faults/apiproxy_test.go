package faults

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// apiGate stands between one replica and the API server, so that a test can stop that replica's writes
// at a chosen point: a request it holds is never forwarded, and ends only when the replica drops it
// (killed, or cancelled on shutdown). Everything else, watches included, passes through unchanged, with
// the admin's credentials.
type apiGate struct {
	server     *httptest.Server
	kubeconfig string

	mu      sync.Mutex
	match   func(*http.Request) bool
	pass    int      // matching requests still let through before the next is held
	passed  []string // matching requests let through, "METHOD path"
	holding chan string
}

func newAPIGate(t *testing.T) *apiGate {
	t.Helper()
	transport, err := rest.TransportFor(testCluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	host := testCluster.Config.Host
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	target, err := url.Parse(host)
	if err != nil {
		t.Fatal(err)
	}
	proxy := &httputil.ReverseProxy{
		Rewrite:       func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport:     transport,
		FlushInterval: -1, // watches stream
		ErrorHandler:  func(w http.ResponseWriter, _ *http.Request, _ error) { w.WriteHeader(http.StatusBadGateway) },
	}
	gate := &apiGate{holding: make(chan string, 16)}
	gate.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if gate.hold(r) {
			// net/http notices the client going away (and cancels the context) only once the body
			// has been read.
			_, _ = io.Copy(io.Discard, r.Body)
			<-r.Context().Done()
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(gate.server.Close)
	config := clientcmdapi.NewConfig()
	config.Clusters["gate"] = &clientcmdapi.Cluster{Server: gate.server.URL}
	config.AuthInfos["gate"] = &clientcmdapi.AuthInfo{}
	config.Contexts["gate"] = &clientcmdapi.Context{Cluster: "gate", AuthInfo: "gate"}
	config.CurrentContext = "gate"
	gate.kubeconfig = filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*config, gate.kubeconfig); err != nil {
		t.Fatal(err)
	}
	return gate
}

// holdAfter lets pass requests that match through, then holds every further one that matches.
func (g *apiGate) holdAfter(pass int, match func(*http.Request) bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.match, g.pass, g.passed = match, pass, nil
}

func (g *apiGate) hold(r *http.Request) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.match == nil || !g.match(r) {
		return false
	}
	if g.pass > 0 {
		g.pass--
		g.passed = append(g.passed, r.Method+" "+r.URL.Path)
		return false
	}
	g.holding <- r.Method + " " + r.URL.Path
	return true
}

func (g *apiGate) passedRequests() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.passed...)
}

// writesTo matches the requests with method to objects of resource.
func writesTo(method, resource string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == method && strings.Contains(r.URL.Path, "/"+resource+"/")
	}
}
