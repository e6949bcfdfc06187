package lookup

import (
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
)

// CacheOptions is how serve caches the cluster: Longhorn objects from the Longhorn namespace only, no
// managedFields, Pods and Nodes slimmed to what placement reads, and no deep copy on reads. Every
// lookup only reads what it gets; the one writer (the label sync) patches a copy.
func CacheOptions(longhornNamespace, ownNamespace string) cache.Options {
	inLonghornNamespace := map[string]cache.Config{longhornNamespace: {}}
	inDefaultNamespace := map[string]cache.Config{metav1.NamespaceDefault: {}}
	return cache.Options{
		DefaultTransform:             cache.TransformStripManagedFields(),
		DefaultUnsafeDisableDeepCopy: ptr.To(true),
		ByObject: map[client.Object]cache.ByObject{
			&longhorn.Setting{}:           {Namespaces: inLonghornNamespace},
			&longhorn.RecurringJob{}:      {Namespaces: inLonghornNamespace},
			&longhorn.Volume{}:            {Namespaces: inLonghornNamespace},
			&longhorn.Backup{}:            {Namespaces: inLonghornNamespace},
			&longhorn.BackupTarget{}:      {Namespaces: inLonghornNamespace},
			&networkingv1.NetworkPolicy{}: {Namespaces: inLonghornNamespace},
			// The window reads where the kube-apiserver answers, and its own ConfigMap.
			&discoveryv1.EndpointSlice{}: {Namespaces: inDefaultNamespace},
			&corev1.Service{}:            {Namespaces: inDefaultNamespace},
			&corev1.ConfigMap{}:          {Namespaces: map[string]cache.Config{ownNamespace: {}}},
			&corev1.Pod{}:                {Transform: SlimPod},
			&corev1.Node{}:               {Transform: SlimNode},
		},
	}
}
