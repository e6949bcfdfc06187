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
			&longhorn.Setting{}:      {Namespaces: inLonghornNamespace},
			&longhorn.RecurringJob{}: {Namespaces: inLonghornNamespace},
			&longhorn.Volume{}:       {Namespaces: inLonghornNamespace},
			&longhorn.Backup{}:       {Namespaces: inLonghornNamespace},
			&longhorn.BackupVolume{}: {Namespaces: inLonghornNamespace},
			&longhorn.BackupTarget{}: {Namespaces: inLonghornNamespace},
			// The window keeps the store open while any of these works with it.
			&longhorn.SystemBackup{}:       {Namespaces: inLonghornNamespace},
			&longhorn.BackupBackingImage{}: {Namespaces: inLonghornNamespace},
			&networkingv1.NetworkPolicy{}:  {Namespaces: inLonghornNamespace},
			// The window reads where the kube-apiserver answers, and its own ConfigMap.
			&discoveryv1.EndpointSlice{}:    {Namespaces: inDefaultNamespace},
			&corev1.Service{}:               {Namespaces: inDefaultNamespace},
			&corev1.ConfigMap{}:             {Namespaces: map[string]cache.Config{ownNamespace: {}}},
			&corev1.PersistentVolumeClaim{}: {Transform: SlimPVC},
			&corev1.Pod{}:                   {Transform: SlimPod},
			&corev1.Node{}:                  {Transform: SlimNode},
		},
	}
}

// SlimPVC drops what nothing reads of a PVC and takes the most room: the requested and reported sizes
// (maps of quantities), conditions and data sources. Metadata stays whole: the label sync computes its
// JSON patches of labels and annotations from the cached object, so those must be exactly the server's.
func SlimPVC(object any) (any, error) {
	pvc, ok := object.(*corev1.PersistentVolumeClaim)
	if !ok {
		return object, nil
	}
	pvc.ManagedFields = nil
	pvc.Spec = corev1.PersistentVolumeClaimSpec{
		AccessModes:      pvc.Spec.AccessModes,
		StorageClassName: pvc.Spec.StorageClassName,
		VolumeName:       pvc.Spec.VolumeName,
		VolumeMode:       pvc.Spec.VolumeMode,
	}
	pvc.Status = corev1.PersistentVolumeClaimStatus{Phase: pvc.Status.Phase, AccessModes: pvc.Status.AccessModes}
	return pvc, nil
}
