package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	"github.com/backupguard/backupguard/longhorn"
)

// How often serve asks the API server whether Longhorn's CRDs are there yet, and how often it says
// again that they are not.
const (
	longhornCRDPoll   = 2 * time.Second
	longhornCRDRepeat = time.Minute
)

// longhornCRDs names the CRDs of the Longhorn kinds serve's cache watches (lookup.CacheOptions), in
// order: those must be served before anything that reads Longhorn objects can start.
func longhornCRDs(scheme *runtime.Scheme, options cache.Options) ([]string, error) {
	var names []string
	for object := range options.ByObject {
		gvk, err := apiutil.GVKForObject(object, scheme)
		if err != nil {
			return nil, err
		}
		if gvk.GroupVersion() == longhorn.GroupVersion {
			names = append(names, crdName(gvk))
		}
	}
	slices.Sort(names)
	return names, nil
}

// crdName is the name of the CRD that serves a kind: its plural and group. Longhorn's plurals are all
// the lower-case kind plus "s", as the guess makes them.
func crdName(gvk schema.GroupVersionKind) string {
	plural, _ := meta.UnsafeGuessKindToResource(gvk)
	return plural.Resource + "." + gvk.Group
}

// longhornGate waits, before serve sets up anything that reads Longhorn objects, until the API server
// serves every Longhorn CRD serve watches. controller-runtime's cache cannot even be created without
// them (cache.New asks the RESTMapper whether each restricted kind is namespaced), so serve stays up
// meanwhile: alive, with readiness failing and naming the missing CRDs, so that installing backupguard
// before Longhorn (a Flux dependsOn mistake, say) shows what is wrong instead of a crash loop, and
// goes on without a restart once they are installed.
type longhornGate struct {
	Discovery discovery.DiscoveryInterface
	// Required are the CRD names (longhornCRDs), all of group version longhorn.GroupVersion.
	Required []string
	Log      logr.Logger

	mu      sync.Mutex
	problem error
}

func newLonghornGate(discovery discovery.DiscoveryInterface, required []string, log logr.Logger) *longhornGate {
	return &longhornGate{Discovery: discovery, Required: required, Log: log, problem: errors.New("not checked yet")}
}

// Wait polls discovery until the CRDs are served, logging what is missing at once and then once a
// minute (or when it changes). It returns ctx's error if ctx ends first.
func (g *longhornGate) Wait(ctx context.Context) error {
	var lastSaid string
	var lastSaidAt time.Time
	for {
		missing, err := g.missing()
		switch {
		case err != nil:
			g.setProblem(fmt.Errorf("cannot tell whether Longhorn's CRDs are installed: %w", err))
		case len(missing) > 0:
			g.setProblem(fmt.Errorf("Longhorn's CRDs are not installed: %s; serve waits for them and starts without a restart", strings.Join(missing, ", ")))
		default:
			if lastSaid != "" {
				g.Log.Info("Longhorn's CRDs are installed; starting", "crds", len(g.Required))
			}
			g.setProblem(nil)
			return nil
		}
		problem := g.Ready(nil)
		if said := problem.Error(); said != lastSaid || time.Since(lastSaidAt) >= longhornCRDRepeat {
			g.Log.Error(problem, "waiting for Longhorn's CRDs; not ready until they are installed")
			lastSaid, lastSaidAt = said, time.Now()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(longhornCRDPoll):
		}
	}
}

// Ready is a readiness check: it fails, saying why, until the CRDs are served.
func (g *longhornGate) Ready(*http.Request) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.problem
}

func (g *longhornGate) setProblem(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.problem = err
}

// missing lists the required CRDs the API server does not serve.
func (g *longhornGate) missing() ([]string, error) {
	resources, err := g.Discovery.ServerResourcesForGroupVersion(longhorn.GroupVersion.String())
	if apierrors.IsNotFound(err) {
		return g.Required, nil
	}
	if err != nil {
		return nil, err
	}
	served := map[string]bool{}
	for _, resource := range resources.APIResources {
		served[resource.Name+"."+longhorn.GroupVersion.Group] = true
	}
	var missing []string
	for _, name := range g.Required {
		if !served[name] {
			missing = append(missing, name)
		}
	}
	return missing, nil
}
