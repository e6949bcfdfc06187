// Package lookuptest builds, for tests, a fake client that answers the lookups the way serve's cache
// does: Kubernetes' and Longhorn's kinds, and the cache indexes lookup.Cache reads.
package lookuptest

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
)

// FakeClientBuilder is a fake client builder with the scheme and indexes of serve's cache.
func FakeClientBuilder(tb testing.TB) *fake.ClientBuilder {
	tb.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		tb.Fatal(err)
	}
	if err := longhorn.AddToScheme(scheme); err != nil {
		tb.Fatal(err)
	}
	return fake.NewClientBuilder().WithScheme(scheme).
		WithIndex(&corev1.PersistentVolumeClaim{}, lookup.PVCByUID, func(o client.Object) []string { return []string{string(o.GetUID())} }).
		WithIndex(&longhorn.RecurringJob{}, lookup.RecurringJobProvides, lookup.RecurringJobProvidesValues)
}
