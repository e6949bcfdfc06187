package controllers

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	"github.com/backupguard/backupguard/policies"
)

// countingMapper counts the questions asked about CiliumNetworkPolicies.
type countingMapper struct {
	*meta.DefaultRESTMapper
	asked int
}

func (m *countingMapper) RESTMapping(kind schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	if kind == policies.CiliumNetworkPolicyGVK.GroupKind() {
		m.asked++
	}
	return m.DefaultRESTMapper.RESTMapping(kind, versions...)
}

// ciliumTestController is a window controller over a fake API server without Cilium's CRD that answers
// every list and apply with answer, and the requests it was sent.
func ciliumTestController(t *testing.T, answer error) (*WindowController, *countingMapper, *clocktesting.FakeClock, *[]string) {
	t.Helper()
	mapper := &countingMapper{DefaultRESTMapper: meta.NewDefaultRESTMapper(nil)}
	var requests []string
	record := func(object runtime.Object) {
		requests = append(requests, object.GetObjectKind().GroupVersionKind().Kind)
	}
	fakeClient := fake.NewClientBuilder().WithRESTMapper(mapper).WithInterceptorFuncs(interceptor.Funcs{
		List: func(_ context.Context, _ client.WithWatch, list client.ObjectList, _ ...client.ListOption) error {
			record(list)
			return answer
		},
		Apply: func(_ context.Context, _ client.WithWatch, _ runtime.ApplyConfiguration, _ ...client.ApplyOption) error {
			requests = append(requests, "apply")
			return answer
		},
	}).Build()
	clock := clocktesting.NewFakeClock(time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC))
	return &WindowController{Client: fakeClient, Clock: clock, Log: logr.Discard()}, mapper, clock, &requests
}

func ciliumTestWindow(t *testing.T, flavor string) *policies.Window {
	t.Helper()
	config, err := policies.ParseConfig([]byte("apiVersion: backupguard.io/v1alpha1\nkind: Config\nwindow:\n  opens: \"55 0 * * *\"\n  duration: 3h5m\n  networkPolicyFlavor: "+flavor+"\n"), "c.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return config.CompiledWindow()
}

func TestCiliumPoliciesWithoutCiliumsCRD(t *testing.T) {
	for _, flavor := range []string{"auto", "kubernetes"} {
		t.Run(flavor+" fences with NetworkPolicies alone and sends nothing", func(t *testing.T) {
			controller, _, _, requests := ciliumTestController(t, nil)
			if err := controller.applyCiliumPolicies(context.Background(), "longhorn-system", ciliumTestWindow(t, flavor)); err != nil {
				t.Fatal(err)
			}
			if err := controller.removeCiliumPolicies(context.Background(), "longhorn-system", nil); err != nil {
				t.Fatal(err)
			}
			if len(*requests) != 0 {
				t.Errorf("requests: %v", *requests)
			}
		})
	}
	t.Run("cilium refuses to fence", func(t *testing.T) {
		controller, _, _, requests := ciliumTestController(t, nil)
		err := controller.applyCiliumPolicies(context.Background(), "longhorn-system", ciliumTestWindow(t, "cilium"))
		want := "window.networkPolicyFlavor is cilium, but the API server does not serve CiliumNetworkPolicies (cilium.io/v2): refusing to fence Longhorn with NetworkPolicies alone, which cut it off the kube-apiserver on Cilium"
		if err == nil || err.Error() != want {
			t.Errorf("error:\n got %v\nwant %s", err, want)
		}
		if len(*requests) != 0 {
			t.Errorf("requests: %v", *requests)
		}
	})
}

// Discovery of a group the API server lacks costs a whole discovery: the answer is kept for a minute,
// then asked again, so a CRD installed later is found without a restart.
func TestCiliumDetectionIsRememberedForAMinute(t *testing.T) {
	controller, mapper, clock, _ := ciliumTestController(t, nil)
	ctx := context.Background()
	served := func() bool {
		t.Helper()
		served, err := controller.ciliumServed(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return served
	}
	type check struct {
		Served bool
		Asked  int
	}
	var got []check
	got = append(got, check{served(), mapper.asked})
	clock.Step(59 * time.Second)
	got = append(got, check{served(), mapper.asked})
	mapper.Add(policies.CiliumNetworkPolicyGVK, meta.RESTScopeNamespace)
	got = append(got, check{served(), mapper.asked})
	clock.Step(time.Second)
	got = append(got, check{served(), mapper.asked})
	clock.Step(30 * time.Second)
	got = append(got, check{served(), mapper.asked})
	want := []check{{false, 1}, {false, 1}, {false, 1}, {true, 2}, {true, 2}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// The RESTMapper may remember CiliumNetworkPolicies after Cilium's CRDs were removed; the API server
// then answers 404 for the whole resource, and auto fences as on any other CNI.
func TestCiliumUninstalledAfterDetection(t *testing.T) {
	gone := apierrors.NewNotFound(schema.GroupResource{Group: "cilium.io", Resource: "ciliumnetworkpolicies"}, "")
	controller, mapper, _, requests := ciliumTestController(t, gone)
	mapper.Add(policies.CiliumNetworkPolicyGVK, meta.RESTScopeNamespace)
	ctx := context.Background()
	if err := controller.applyCiliumPolicies(ctx, "longhorn-system", ciliumTestWindow(t, "auto")); err != nil {
		t.Errorf("applying with auto: %v", err)
	}
	if err := controller.removeCiliumPolicies(ctx, "longhorn-system", nil); err != nil {
		t.Errorf("removing: %v", err)
	}
	if diff := cmp.Diff([]string{"apply"}, *requests); diff != "" {
		t.Errorf("requests, none after the 404 (-want +got):\n%s", diff)
	}

	controller, mapper, _, requests = ciliumTestController(t, gone)
	mapper.Add(policies.CiliumNetworkPolicyGVK, meta.RESTScopeNamespace)
	if err := controller.removeCiliumPolicies(ctx, "longhorn-system", nil); err != nil {
		t.Errorf("removing: %v", err)
	}
	if err := controller.applyCiliumPolicies(ctx, "longhorn-system", ciliumTestWindow(t, "cilium")); err == nil {
		t.Error("flavor cilium fenced without CiliumNetworkPolicies")
	}
	if diff := cmp.Diff([]string{"CiliumNetworkPolicyList"}, *requests); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}
