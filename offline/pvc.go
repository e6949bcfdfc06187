package offline

import (
	"encoding/json"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	sigsjson "sigs.k8s.io/json"

	"github.com/backupguard/backupguard/longhorn"
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

// inventory is the cluster state found in the input itself.
type inventory struct {
	namespaces          map[string]map[string]string
	storageClasses      map[string]*storagev1.StorageClass
	defaultStorageClass *storagev1.StorageClass
	pvDrivers           map[string]string
	// knownJobs and knownGroups are nil when the input holds no RecurringJob: then nothing is known
	// about which jobs exist, and no warning is given about rules naming missing ones.
	knownJobs, knownGroups sets.Set[string]
	// What placing backup Jobs reads, by "namespace/name" (PVs and Nodes by name).
	pvcs        map[string]*corev1.PersistentVolumeClaim
	podsByClaim map[string][]policies.MountingPod
	pvs         map[string]*corev1.PersistentVolume
	nodes       map[string]*corev1.Node
	// pollingBackupTargets are the BackupTargets in the input that still poll the store.
	pollingBackupTargets map[string]string
}

func takeInventory(documents []Document) inventory {
	found := inventory{
		namespaces: map[string]map[string]string{}, storageClasses: map[string]*storagev1.StorageClass{}, pvDrivers: map[string]string{},
		pvcs: map[string]*corev1.PersistentVolumeClaim{}, podsByClaim: map[string][]policies.MountingPod{}, pvs: map[string]*corev1.PersistentVolume{}, nodes: map[string]*corev1.Node{},
		pollingBackupTargets: map[string]string{},
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
				found.namespaces[namespace.Name] = namespace.Labels
			}
		case storageClassGroupKind:
			class := &storagev1.StorageClass{}
			if decodeInto(document.Object, class) == nil {
				found.storageClasses[class.Name] = class
				if policies.IsDefaultStorageClass(class) {
					found.defaultStorageClass = class
				}
			}
		case pvGroupKind:
			pv := &corev1.PersistentVolume{}
			if decodeInto(document.Object, pv) == nil && pv.Spec.CSI != nil {
				found.pvDrivers[pv.Name] = pv.Spec.CSI.Driver
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
		}
	}
	return found
}

// checkPVC shows the labels the PVC webhook would add. PVCs are never denied.
func checkPVC(document Document, config *policies.Config, found inventory) Result {
	pvc := &corev1.PersistentVolumeClaim{}
	result := Result{Source: document.Source, Violations: []Violation{}, Warnings: []string{}, Patch: []jsonpatch.Operation{}}
	result.APIVersion, _ = document.Object["apiVersion"].(string)
	result.Kind, _ = document.Object["kind"].(string)
	if err := decodeInto(document.Object, pvc); err != nil {
		result.Violations = []Violation{{Type: string(field.ErrorTypeTypeInvalid), Message: "not a valid PersistentVolumeClaim: " + err.Error()}}
		return result
	}
	result.Namespace, result.Name, result.Allowed = pvc.Namespace, pvc.Name, true
	namespace := pvc.Namespace
	if namespace == "" {
		namespace = corev1.NamespaceDefault
		result.Warnings = append(result.Warnings, `metadata.namespace is not set: rules were evaluated as if it were "default"`)
	}
	labels, namespaceFound := found.namespaces[namespace]
	env := policies.PVCEnvironment{
		Namespace:       namespace,
		NamespaceLabels: labels,
		NamespaceFound:  namespaceFound,
		Offline:         true,
		KnownJobs:       found.knownJobs,
		KnownGroups:     found.knownGroups,
	}
	if className := policies.StorageClassName(pvc); className != "" {
		env.StorageClass = found.storageClasses[className]
	} else if !policies.NamesStorageClass(pvc) {
		env.StorageClass = found.defaultStorageClass
	}
	if pvc.Spec.VolumeName != "" {
		env.BoundPVDriver = found.pvDrivers[pvc.Spec.VolumeName]
	}
	decision := policies.DecidePVCLabels(pvc, env, config.LabelRules())
	result.Warnings = append(result.Warnings, decision.Warnings...)
	if decision.Patch != nil {
		result.Patch = decision.Patch
	}
	return result
}

// decodeInto converts a decoded manifest into a typed object, with field names matched exactly.
func decodeInto(object map[string]any, into any) error {
	data, err := json.Marshal(object)
	if err != nil {
		return err
	}
	return sigsjson.UnmarshalCaseSensitivePreserveInts(data, into)
}
