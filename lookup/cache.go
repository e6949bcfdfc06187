package lookup

import (
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
)

// CacheOptions is how serve caches the cluster: Longhorn objects from the Longhorn namespace only, no
// managedFields, Pods and Nodes slimmed to what placement reads, and no deep copy on reads. Every
// lookup only reads what it gets; the one writer (the label sync) patches a copy.
func CacheOptions(longhornNamespace string) cache.Options {
	inLonghornNamespace := map[string]cache.Config{longhornNamespace: {}}
	return cache.Options{
		DefaultTransform:             cache.TransformStripManagedFields(),
		DefaultUnsafeDisableDeepCopy: ptr.To(true),
		ByObject: map[client.Object]cache.ByObject{
			&longhorn.Setting{}:      {Namespaces: inLonghornNamespace},
			&longhorn.RecurringJob{}: {Namespaces: inLonghornNamespace},
			&longhorn.Volume{}:       {Namespaces: inLonghornNamespace},
			&corev1.Pod{}:            {Transform: SlimPod},
			&corev1.Node{}:           {Transform: SlimNode},
		},
	}
}
