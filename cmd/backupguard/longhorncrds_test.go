package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
)

// TestLonghornCRDsAreTheWatchedKinds: serve waits for exactly the CRDs of the Longhorn kinds its cache
// watches, named as Longhorn names them.
func TestLonghornCRDsAreTheWatchedKinds(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := longhorn.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	got, err := longhornCRDs(scheme, lookup.CacheOptions("longhorn-system", "backupguard-system"))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"backupbackingimages.longhorn.io", "backups.longhorn.io", "backuptargets.longhorn.io", "backupvolumes.longhorn.io",
		"recurringjobs.longhorn.io", "settings.longhorn.io", "systembackups.longhorn.io", "volumes.longhorn.io"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("CRDs (-want +got):\n%s", diff)
	}
}
