package offline

import (
	"context"
	"maps"
	"slices"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/lookup"
	"github.com/backupguard/backupguard/policies"
)

var (
	pvcGroupKind          = schema.GroupKind{Kind: "PersistentVolumeClaim"}
	namespaceGroupKind    = schema.GroupKind{Kind: "Namespace"}
	pvGroupKind           = schema.GroupKind{Kind: "PersistentVolume"}
	storageClassGroupKind = schema.GroupKind{Group: "storage.k8s.io", Kind: "StorageClass"}
	nodeGroupKind         = schema.GroupKind{Kind: "Node"}
	backupTargetGroupKind = schema.GroupKind{Group: "longhorn.io", Kind: "BackupTarget"}
)

// inventory is the cluster state found in the input itself: the lookup.Reader of an offline run.
type inventory struct {
	namespaces     map[string]*corev1.Namespace
	storageClasses map[string]*storagev1.StorageClass
	// knownJobs and knownGroups are nil when the input holds no RecurringJob: then nothing is known
	// about which jobs exist, and no warning is given about rules naming missing ones.
	knownJobs, knownGroups sets.Set[string]
	// PVCs, Pods and Volumes by "namespace/name" (Pods by "namespace/claim" of each claim they mount),
	// PVs and Nodes by name.
	pvcs        map[string]*corev1.PersistentVolumeClaim
	podsByClaim map[string][]policies.MountingPod
	pvs         map[string]*corev1.PersistentVolume
	volumes     map[string]*longhorn.Volume
	nodes       map[string]*corev1.Node
	// pollingBackupTargets are the BackupTargets in the input that still poll the store.
	pollingBackupTargets map[string]string
	// The Longhorn objects the coverage report lists, in input order; Settings by "namespace/name".
	recurringJobs []*longhorn.RecurringJob
	backups       []*longhorn.Backup
	backupVolumes []*longhorn.BackupVolume
	settings      map[string]*longhorn.Setting
}

var _ lookup.Reader = inventory{}

func takeInventory(documents []Document) inventory {
	found := inventory{
		namespaces: map[string]*corev1.Namespace{}, storageClasses: map[string]*storagev1.StorageClass{},
		pvcs: map[string]*corev1.PersistentVolumeClaim{}, podsByClaim: map[string][]policies.MountingPod{}, pvs: map[string]*corev1.PersistentVolume{},
		volumes: map[string]*longhorn.Volume{}, nodes: map[string]*corev1.Node{},
		pollingBackupTargets: map[string]string{}, settings: map[string]*longhorn.Setting{},
	}
	for _, document := range documents {
		apiVersion, _ := document.Object["apiVersion"].(string)
		kind, _ := document.Object["kind"].(string)
		groupVersion, _ := schema.ParseGroupVersion(apiVersion)
		groupKind := groupVersion.WithKind(kind).GroupKind()
		found.addWorkloads(document, groupKind)
		switch groupKind {
		case namespaceGroupKind:
			namespace := &corev1.Namespace{}
			if decodeInto(document.Object, namespace) == nil {
				found.namespaces[namespace.Name] = namespace
			}
		case storageClassGroupKind:
			class := &storagev1.StorageClass{}
			if decodeInto(document.Object, class) == nil {
				found.storageClasses[class.Name] = class
			}
		case longhorn.VolumeGVK.GroupKind():
			volume := &longhorn.Volume{}
			if decodeInto(document.Object, volume) == nil {
				found.volumes[volume.Namespace+"/"+volume.Name] = volume
			}
		case backupTargetGroupKind:
			target := &longhorn.BackupTarget{}
			if decodeInto(document.Object, target) == nil {
				if interval := policies.PollingInterval(target.Spec.PollInterval); interval != "" {
					found.pollingBackupTargets[target.Name] = interval
				}
			}
		case longhorn.RecurringJobGVK.GroupKind():
			job, errs := longhorn.DecodeRecurringJob(document.Object)
			if len(errs) > 0 {
				continue
			}
			if found.knownJobs == nil {
				found.knownJobs, found.knownGroups = sets.New[string](), sets.New[string]()
			}
			found.knownJobs.Insert(job.Name) // the label key is metadata.name, not spec.name
			found.knownGroups.Insert(job.Spec.Groups...)
			found.recurringJobs = append(found.recurringJobs, job)
		default:
			found.addBackupState(document, groupKind)
		}
	}
	return found
}

// Namespace implements lookup.Reader.
func (found inventory) Namespace(_ context.Context, name string) (*corev1.Namespace, error) {
	return found.namespaces[name], nil
}

// PVC implements lookup.Reader.
func (found inventory) PVC(_ context.Context, namespace, name string) (*corev1.PersistentVolumeClaim, error) {
	return found.pvcs[namespace+"/"+name], nil
}

// PVCByUID implements lookup.Reader; manifests rarely carry a uid.
func (found inventory) PVCByUID(_ context.Context, uid string) (*corev1.PersistentVolumeClaim, error) {
	for _, pvc := range found.pvcs {
		if string(pvc.UID) == uid {
			return pvc, nil
		}
	}
	return nil, nil
}

// PV implements lookup.Reader.
func (found inventory) PV(_ context.Context, name string) (*corev1.PersistentVolume, error) {
	return found.pvs[name], nil
}

// StorageClass implements lookup.Reader.
func (found inventory) StorageClass(_ context.Context, name string) (*storagev1.StorageClass, error) {
	return found.storageClasses[name], nil
}

// StorageClasses implements lookup.Reader.
func (found inventory) StorageClasses(context.Context) ([]*storagev1.StorageClass, error) {
	return slices.Collect(maps.Values(found.storageClasses)), nil
}

// Volume implements lookup.Reader.
func (found inventory) Volume(_ context.Context, namespace, name string) (*longhorn.Volume, error) {
	return found.volumes[namespace+"/"+name], nil
}

// RecurringJobsProviding implements lookup.Reader: RecurringJobs are looked for in the whole input
// (one in another namespace gets its own violation); without any, nothing is known.
func (found inventory) RecurringJobsProviding(_ context.Context, _ string, jobs, groups []string) (sets.Set[string], sets.Set[string], error) {
	if found.knownJobs == nil {
		return nil, nil, nil
	}
	return found.knownJobs.Intersection(sets.New(jobs...)), found.knownGroups.Intersection(sets.New(groups...)), nil
}

// PodsMounting implements lookup.Reader.
func (found inventory) PodsMounting(_ context.Context, namespace, claim string) ([]policies.MountingPod, error) {
	return found.podsByClaim[namespace+"/"+claim], nil
}

// Node implements lookup.Reader.
func (found inventory) Node(_ context.Context, name string) (*corev1.Node, error) {
	return found.nodes[name], nil
}

// Offline implements lookup.Reader: the input is only part of a cluster.
func (inventory) Offline() bool { return true }

// checkPVC shows the labels the PVC webhook would add. A PVC is denied only when it cannot be read.
func checkPVC(document Document, config *policies.Config, found inventory) Result {
	pvc := &corev1.PersistentVolumeClaim{}
	result := Result{Source: document.Source, Violations: []Violation{}, Warnings: []string{}, Patch: []jsonpatch.Operation{}}
	result.APIVersion, _ = document.Object["apiVersion"].(string)
	result.Kind, _ = document.Object["kind"].(string)
	if errs := decodeChecked(document.Object, pvc); len(errs) > 0 {
		result.Namespace, result.Name = objectIdentity(document.Object)
		result.Violations = ViolationsFrom(errs)
		return result
	}
	result.Namespace, result.Name, result.Allowed = pvc.Namespace, pvc.Name, true
	namespace := pvc.Namespace
	if namespace == "" {
		namespace = corev1.NamespaceDefault
		result.Warnings = append(result.Warnings, `metadata.namespace is not set: rules were evaluated as if it were "default"`)
	}
	// The inventory answers without errors.
	env, _ := lookup.PVCEnvironment(context.Background(), found, namespace, pvc, config)
	decision := policies.DecidePVCLabels(pvc, env, config.LabelRules())
	result.Warnings = append(result.Warnings, decision.Warnings...)
	if decision.Patch != nil {
		result.Patch = decision.Patch
	}
	return result
}
