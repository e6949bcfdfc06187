package lookup

import (
	"context"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/policies"
)

// The gathering functions collect, through a Reader, the facts one decision needs: the webhooks, the
// label sync and `backupguard validate` all call them, so the cluster and offline paths cannot drift.

// PVCEnvironment gathers what the label decision for a PVC in namespace needs: its Namespace, its
// StorageClass (the default one when the PVC names none and is not bound yet, as Kubernetes would fill
// in), the CSI driver of its PV, its Longhorn Volume, and which of the jobs and groups the rules name
// exist.
func PVCEnvironment(ctx context.Context, reader Reader, namespace string, pvc *corev1.PersistentVolumeClaim, config *policies.Config) (policies.PVCEnvironment, error) {
	env := policies.PVCEnvironment{Namespace: namespace, Offline: reader.Offline()}
	ns, err := reader.Namespace(ctx, namespace)
	if err != nil {
		return env, err
	}
	if ns != nil {
		env.NamespaceLabels, env.NamespaceFound = ns.Labels, true
	}
	switch className := policies.StorageClassName(pvc); {
	case className != "":
		if env.StorageClass, err = reader.StorageClass(ctx, className); err != nil {
			return env, err
		}
	case !policies.NamesStorageClass(pvc) && pvc.Spec.VolumeName == "":
		classes, err := reader.StorageClasses(ctx)
		if err != nil {
			return env, err
		}
		env.StorageClass = policies.DefaultStorageClass(classes)
	}
	if env.StorageClass == nil && pvc.Spec.VolumeName != "" {
		pv, err := reader.PV(ctx, pvc.Spec.VolumeName)
		if err != nil {
			return env, err
		}
		if pv != nil && pv.Spec.CSI != nil {
			env.BoundPVDriver = pv.Spec.CSI.Driver
		}
	}
	if env.Volume, _, err = VolumeOfPVC(ctx, reader, pvc, config); err != nil {
		return env, err
	}
	jobs, groups := config.LabelRules().NamedJobsAndGroups()
	env.KnownJobs, env.KnownGroups, err = reader.RecurringJobsProviding(ctx, config.Longhorn.Namespace, jobs, groups)
	return env, err
}

// PVCOfVolume finds the PVC a Volume is bound to (policies.VolumeBoundToPVC decides): by the
// "pvc-<uid>" name, else through status.kubernetesStatus and the PV it names. nil when there is none.
func PVCOfVolume(ctx context.Context, reader Reader, volume *longhorn.Volume) (*corev1.PersistentVolumeClaim, error) {
	if uid, ok := policies.PVCUIDOfVolume(volume.Name); ok {
		pvc, err := reader.PVCByUID(ctx, uid)
		if err != nil || policies.VolumeBoundToPVC(volume, pvc, nil) {
			return pvc, err
		}
	}
	status := volume.Status.KubernetesStatus
	if status.PVCName == "" || status.Namespace == "" || status.PVName == "" {
		return nil, nil
	}
	pvc, err := reader.PVC(ctx, status.Namespace, status.PVCName)
	if err != nil || pvc == nil {
		return nil, err
	}
	pv, err := reader.PV(ctx, status.PVName)
	if err != nil || !policies.VolumeBoundToPVC(volume, pvc, pv) {
		return nil, err
	}
	return pvc, nil
}

// VolumeOfPVC finds the Longhorn Volume a PVC is bound to, and its PV (nil when either is not known):
// the Volume named "pvc-<uid>" (dynamically provisioned, also before its PV exists), else the one the
// bound PV names as its CSI volume handle when its driver is one of the configured provisioners.
func VolumeOfPVC(ctx context.Context, reader Reader, pvc *corev1.PersistentVolumeClaim, config *policies.Config) (*longhorn.Volume, *corev1.PersistentVolume, error) {
	var pv *corev1.PersistentVolume
	if pvc.Spec.VolumeName != "" {
		var err error
		if pv, err = reader.PV(ctx, pvc.Spec.VolumeName); err != nil {
			return nil, nil, err
		}
	}
	names := []string{}
	if pvc.UID != "" {
		names = append(names, "pvc-"+string(pvc.UID))
	}
	if pv != nil && pv.Spec.CSI != nil && config.LabelRules().IsProvisioner(pv.Spec.CSI.Driver) {
		names = append(names, pv.Spec.CSI.VolumeHandle)
	}
	for _, name := range names {
		volume, err := reader.Volume(ctx, config.Longhorn.Namespace, name)
		if err != nil {
			return nil, pv, err
		}
		if policies.VolumeBoundToPVC(volume, pvc, pv) {
			return volume, pv, nil
		}
	}
	return nil, pv, nil
}

// Placement gathers what placing a backup Job in namespace needs: each mounted PVC, the pods that use
// it, its PV and Longhorn Volume, and the Nodes they point at.
func Placement(ctx context.Context, reader Reader, namespace string, job *batchv1.Job, config *policies.Config) (policies.PlacementInput, error) {
	input := policies.PlacementInput{
		Job: job, Claims: map[string]policies.ClaimFacts{}, Nodes: map[string]*corev1.Node{},
		Unresolved: config.BackupJobRules().Unresolved, Offline: reader.Offline(),
	}
	for _, claim := range policies.ClaimNames(&job.Spec.Template.Spec) {
		var facts policies.ClaimFacts
		var err error
		if facts.PVC, err = reader.PVC(ctx, namespace, claim); err != nil {
			return input, err
		}
		if facts.PVC != nil {
			if facts.Pods, err = reader.PodsMounting(ctx, namespace, claim); err != nil {
				return input, err
			}
			if facts.Volume, facts.PV, err = VolumeOfPVC(ctx, reader, facts.PVC, config); err != nil {
				return input, err
			}
		}
		input.Claims[claim] = facts
	}
	for _, name := range policies.NodesOfInterest(input) {
		node, err := reader.Node(ctx, name)
		if err != nil {
			return input, err
		}
		if node != nil {
			input.Nodes[name] = node
		}
	}
	return input, nil
}
