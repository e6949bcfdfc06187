package policies

import (
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"strconv"
	"strings"

	"gomodules.xyz/jsonpatch/v2"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/backupguard/backupguard/longhorn"
)

// Annotations backupguard reads and writes on PVCs.
const (
	// ManagedLabelsAnnotation lists, sorted and comma-separated, the labels backupguard added to a PVC,
	// so that it removes exactly those when a rule stops applying and never a label a person set.
	ManagedLabelsAnnotation = "backupguard.io/managed-labels"
	// SkipAnnotation set to "true" on a PVC makes backupguard leave its labels alone.
	SkipAnnotation = "backupguard.io/skip"
	// betaStorageClassAnnotation is the pre-1.6 way to name a StorageClass, still honoured by Kubernetes.
	betaStorageClassAnnotation = "volume.beta.kubernetes.io/storage-class"
)

// PVCEnvironment is what the label decision for a PVC needs besides the PVC.
type PVCEnvironment struct {
	// Namespace is the PVC's namespace: the admission request's, never the object's own say.
	Namespace string
	// NamespaceLabels are the labels of that Namespace; NamespaceFound is false when the Namespace
	// object is not known (offline: not in the input).
	NamespaceLabels map[string]string
	NamespaceFound  bool
	// StorageClass is the PVC's StorageClass, nil when the PVC names none or it is not found.
	StorageClass *storagev1.StorageClass
	// Volume is the Longhorn Volume bound to the PVC, nil when there is none yet or it is not known.
	Volume *longhorn.Volume
	// BoundPVDriver is the CSI driver of the PV a statically bound PVC names, "" when unknown.
	BoundPVDriver string
	// Offline says that a missing StorageClass or Namespace is missing from the input only, not from a
	// cluster: the PVC is then assumed to be Longhorn's, with a warning.
	Offline bool
	// KnownJobs and KnownGroups are what the RecurringJobs that exist provide; nil when unknown, which
	// turns off the warnings about rules naming jobs or groups nobody runs.
	KnownJobs, KnownGroups sets.Set[string]
}

// LabelDecision is how a PVC's or Volume's labels must change.
type LabelDecision struct {
	// Patch turns the object's labels (and the managed-labels annotation) into the desired ones; empty
	// when they are right already.
	Patch []jsonpatch.Operation
	// Labels are the labels the object ends with.
	Labels   map[string]string
	Warnings []string
}

// DecidePVCLabels works out a PVC's recurring-job labels: those of every matching rule, plus the
// source label that makes Longhorn copy them to the Volume (labels on a PVC do nothing without it).
//
// Labels it added and no rule wants any more are removed, and labels a person set are kept. The source
// label stays once backupguard has set it: without it Longhorn stops mirroring the PVC, and the Volume
// would keep the removed jobs for good. A recurring label whose value is not "enabled" (which Longhorn
// silently ignores) is corrected with a warning, unless the value says "off", which is left as written
// with a warning that it has no effect.
//
// Once the PVC is a source, Longhorn makes the Volume's recurring labels exactly the PVC's, so when
// backupguard makes it one, the PVC first takes the Volume's own recurring labels (those it has, or,
// before it exists, those the StorageClass's recurringJobSelector will give it), not recorded as
// managed, so that they are never removed. A volume in Longhorn's default group keeps it
// (labels.keepDefaultGroup), or a warning says that the rule takes it out of a group that has jobs.
func DecidePVCLabels(pvc *corev1.PersistentVolumeClaim, env PVCEnvironment, rules *LabelRules) LabelDecision {
	current := pvc.Labels
	if pvc.Annotations[SkipAnnotation] == "true" {
		return LabelDecision{Labels: current}
	}
	isLonghorn, known, why := rules.isLonghornPVC(pvc, env)
	var warnings []string
	if why != "" {
		warnings = append(warnings, why)
	}
	if !known {
		// Without its StorageClass nothing can be decided; change nothing until it appears.
		return LabelDecision{Labels: current, Warnings: warnings}
	}
	var matched []compiledRule
	desired := sets.New[string]()
	if isLonghorn {
		if rules.usesNamespaceLabels && !env.NamespaceFound {
			warnings = append(warnings, fmt.Sprintf("namespace %q is not known, so rules with a namespaceSelector were not applied", env.Namespace))
		}
		for _, rule := range rules.rules {
			if !rule.matches(pvc, env) {
				continue
			}
			matched = append(matched, rule)
			for _, job := range rule.jobs {
				desired.Insert(longhorn.RecurringJobLabelPrefix + job)
			}
			for _, group := range rule.groups {
				desired.Insert(longhorn.RecurringJobGroupLabelPrefix + group)
			}
		}
	}
	managed := parseManagedLabels(pvc.Annotations[ManagedLabelsAnnotation])
	own, inDefaultGroup, ownWarnings := labelsOfItsOwn(pvc, env, managed)
	warnings = append(warnings, ownWarnings...)
	if desired.Len() > 0 && inDefaultGroup {
		if rules.keepDefaultGroup {
			desired.Insert(defaultGroupLabel)
		} else if env.KnownGroups.Has(longhorn.DefaultGroup) {
			warnings = append(warnings, fmt.Sprintf("the labels of rule %s take this volume out of Longhorn's default group, whose RecurringJobs will no longer run for it: set labels.keepDefaultGroup: true, or name the jobs in a rule", quotedRuleNames(matched)))
		}
	}
	if desired.Len() > 0 || (isLonghorn && managed.Has(longhorn.RecurringJobSourceLabel)) {
		desired.Insert(longhorn.RecurringJobSourceLabel)
	}
	warnings = append(warnings, unknownJobWarnings(matched, env)...)

	result := maps.Clone(current)
	if result == nil {
		result = map[string]string{}
	}
	if desired.Has(longhorn.RecurringJobSourceLabel) && current[longhorn.RecurringJobSourceLabel] != longhorn.LabelEnabled {
		// About to become a source: the Volume's own labels go on the PVC first, as a person's would.
		for _, key := range sets.List(own) {
			if _, present := result[key]; !present {
				result[key] = longhorn.LabelEnabled
			}
		}
	}
	stillManaged := sets.New[string]()
	for _, key := range sets.List(managed.Difference(desired)) {
		// Ours to remove, unless a person has since given it another value.
		if result[key] == longhorn.LabelEnabled {
			delete(result, key)
		}
	}
	for _, key := range sets.List(desired) {
		value, present := result[key]
		switch {
		case !present:
			result[key] = longhorn.LabelEnabled
			stillManaged.Insert(key)
		case managed.Has(key) && value == longhorn.LabelEnabled:
			stillManaged.Insert(key)
		}
	}
	if isLonghorn {
		for _, key := range sets.List(sets.KeySet(result)) {
			value := result[key]
			switch {
			case !longhorn.IsRecurringLabel(key) || value == longhorn.LabelEnabled:
			case key == longhorn.RecurringJobSourceLabel && meansOff(value):
				warnings = append(warnings, fmt.Sprintf("label %s=%q has no effect: Longhorn copies a PVC's recurring labels to its Volume only with %q", key, value, longhorn.LabelEnabled))
			case meansOff(value):
				warnings = append(warnings, fmt.Sprintf("label %s=%q has no effect: Longhorn only honours %q; remove the label to leave the job out", key, value, longhorn.LabelEnabled))
			default:
				warnings = append(warnings, fmt.Sprintf("label %s=%q was changed to %q: Longhorn ignores any other value", key, value, longhorn.LabelEnabled))
				result[key] = longhorn.LabelEnabled
			}
		}
	}
	if len(result) == 0 && current == nil {
		result = nil
	}

	annotations := maps.Clone(pvc.Annotations)
	if stillManaged.Len() > 0 {
		if annotations == nil {
			annotations = map[string]string{}
		}
		annotations[ManagedLabelsAnnotation] = strings.Join(sets.List(stillManaged), ",")
	} else {
		delete(annotations, ManagedLabelsAnnotation)
	}
	patch := append(mapPatch("/metadata/labels", current, result), mapPatch("/metadata/annotations", pvc.Annotations, annotations)...)
	return LabelDecision{Patch: patch, Labels: result, Warnings: warnings}
}

// defaultGroupLabel puts a Volume in Longhorn's default group.
const defaultGroupLabel = longhorn.RecurringJobGroupLabelPrefix + longhorn.DefaultGroup

// labelsOfItsOwn are the enabled recurring job and group labels the PVC's Volume has without
// backupguard, and whether that leaves it in Longhorn's default group, which Longhorn gives a Volume
// with no recurring label at all (datastore/longhorn.go labelRecurringJobDefault).
//
// Once the PVC is a source, the Volume's labels are the PVC's (controller/recurring_job_controller.go
// syncRecurringJobLabelsToTargetResource): its own are those backupguard did not add. Before, they are
// the Volume's, or, while it is being provisioned, those the StorageClass's recurringJobSelector will
// give it (csi/util.go getVolumeOptions, manager/volume.go Create), and the PVC's unmanaged ones join
// them once it becomes a source.
func labelsOfItsOwn(pvc *corev1.PersistentVolumeClaim, env PVCEnvironment, managed sets.Set[string]) (own sets.Set[string], inDefaultGroup bool, warnings []string) {
	enabledJobsAndGroups := func(labels map[string]string, enabled func(string) bool) sets.Set[string] {
		found := sets.New[string]()
		for key, value := range labels {
			if longhorn.IsRecurringLabel(key) && key != longhorn.RecurringJobSourceLabel && enabled(value) && !managed.Has(key) {
				found.Insert(key)
			}
		}
		return found
	}
	isEnabled := func(value string) bool { return value == longhorn.LabelEnabled }
	// A PVC label with another value that does not mean "off" is corrected to enabled by the same
	// decision, so it counts already: otherwise the next decision would see a label of the volume's own
	// and take back the default group (found by FuzzLabelPatches).
	willBeEnabled := func(value string) bool { return value == longhorn.LabelEnabled || !meansOff(value) }
	own = enabledJobsAndGroups(pvc.Labels, willBeEnabled)
	if pvc.Labels[longhorn.RecurringJobSourceLabel] != longhorn.LabelEnabled {
		volumeOwn := sets.New[string]()
		switch {
		case env.Volume != nil:
			volumeOwn = enabledJobsAndGroups(env.Volume.Labels, isEnabled)
		case pvc.Spec.VolumeName == "" && env.StorageClass != nil:
			selected, err := recurringJobSelectorLabels(env.StorageClass)
			if err != nil {
				warnings = append(warnings, fmt.Sprintf("StorageClass %q: %v", env.StorageClass.Name, err))
			}
			volumeOwn.Insert(selected...)
		}
		// The default group alone is Longhorn's doing, not a label of the Volume's own.
		if !volumeOwn.Equal(sets.New(defaultGroupLabel)) {
			own = own.Union(volumeOwn)
		}
	}
	return own, own.Len() == 0 || own.Equal(sets.New(defaultGroupLabel)), warnings
}

// recurringJobSelectorParameter is the StorageClass parameter whose jobs and groups Longhorn labels a
// new Volume with: JSON, [{"name":"snap-hourly","isGroup":false}].
const recurringJobSelectorParameter = "recurringJobSelector"

// recurringJobSelectorLabels are the labels a StorageClass's recurringJobSelector gives the Volumes
// Longhorn creates for it.
func recurringJobSelectorLabels(class *storagev1.StorageClass) ([]string, error) {
	text, found := class.Parameters[recurringJobSelectorParameter]
	if !found {
		return nil, nil
	}
	var selector []struct {
		Name    string `json:"name"`
		IsGroup bool   `json:"isGroup"`
	}
	if err := json.Unmarshal([]byte(text), &selector); err != nil {
		return nil, fmt.Errorf("parameter %s is not valid JSON (Longhorn will refuse to provision from it): %v", recurringJobSelectorParameter, err)
	}
	labels := make([]string, 0, len(selector))
	for _, job := range selector {
		prefix := longhorn.RecurringJobLabelPrefix
		if job.IsGroup {
			prefix = longhorn.RecurringJobGroupLabelPrefix
		}
		labels = append(labels, prefix+job.Name)
	}
	return labels, nil
}

func quotedRuleNames(rules []compiledRule) string {
	names := make([]string, len(rules))
	for i, rule := range rules {
		names[i] = strconv.Quote(rule.name)
	}
	return strings.Join(names, ", ")
}

// meansOff tells whether a label value says the person wants the job off.
func meansOff(value string) bool {
	switch strings.ToLower(strings.TrimSpace(value)) {
	case "disabled", "false", "no", "off", "0":
		return true
	}
	return false
}

// The annotations that mark the StorageClass PVCs without one get (the beta one is still honoured).
const (
	defaultStorageClassAnnotation     = "storageclass.kubernetes.io/is-default-class"
	betaDefaultStorageClassAnnotation = "storageclass.beta.kubernetes.io/is-default-class"
)

// IsDefaultStorageClass tells whether class is marked as the cluster's default.
func IsDefaultStorageClass(class *storagev1.StorageClass) bool {
	return class.Annotations[defaultStorageClassAnnotation] == "true" || class.Annotations[betaDefaultStorageClassAnnotation] == "true"
}

// DefaultStorageClass is the class Kubernetes gives a PVC that names none: of the classes marked
// default, the newest, then the first by name (as the DefaultStorageClass admission plugin and the
// retroactive assignment to unbound PVCs choose). nil when none is marked.
func DefaultStorageClass(classes []*storagev1.StorageClass) *storagev1.StorageClass {
	var chosen *storagev1.StorageClass
	for _, class := range classes {
		if !IsDefaultStorageClass(class) {
			continue
		}
		if chosen == nil || class.CreationTimestamp.After(chosen.CreationTimestamp.Time) ||
			(class.CreationTimestamp.Equal(&chosen.CreationTimestamp) && class.Name < chosen.Name) {
			chosen = class
		}
	}
	return chosen
}

// isLonghornPVC tells whether the PVC's volume comes from a configured provisioner; known is false when
// that cannot be told (its StorageClass does not exist); why explains what is worth a warning.
func (r *LabelRules) isLonghornPVC(pvc *corev1.PersistentVolumeClaim, env PVCEnvironment) (isLonghorn, known bool, why string) {
	className := StorageClassName(pvc)
	switch {
	case env.StorageClass != nil:
		return r.provisioners.Has(env.StorageClass.Provisioner), true, ""
	case env.BoundPVDriver != "":
		return r.provisioners.Has(env.BoundPVDriver), true, ""
	case env.Offline && className == "" && !NamesStorageClass(pvc):
		// In the cluster the default StorageClass would be filled in before backupguard sees the PVC.
		return true, true, fmt.Sprintf("no storageClassName and no default StorageClass in the input; assuming the cluster's default has one of the provisioners %s", strings.Join(sets.List(r.provisioners), ", "))
	case className == "":
		return false, true, ""
	case env.Offline:
		return true, true, fmt.Sprintf("StorageClass %q is not in the input; assuming its provisioner is one of %s", className, strings.Join(sets.List(r.provisioners), ", "))
	case len(r.rules) == 0:
		return false, false, ""
	default:
		return false, false, fmt.Sprintf("StorageClass %q does not exist, so backupguard cannot tell whether this is a Longhorn volume: its recurring-job labels were left as they are", className)
	}
}

// NamesStorageClass tells whether the PVC says which class it wants, even "" for none; a PVC that does
// not gets the cluster's default.
func NamesStorageClass(pvc *corev1.PersistentVolumeClaim) bool {
	_, annotated := pvc.Annotations[betaStorageClassAnnotation]
	return pvc.Spec.StorageClassName != nil || annotated
}

// StorageClassName is the class a PVC asks for, from spec or the legacy annotation; "" for none.
func StorageClassName(pvc *corev1.PersistentVolumeClaim) string {
	if pvc.Spec.StorageClassName != nil {
		return *pvc.Spec.StorageClassName
	}
	return pvc.Annotations[betaStorageClassAnnotation]
}

func (rule compiledRule) matches(pvc *corev1.PersistentVolumeClaim, env PVCEnvironment) bool {
	if rule.namespaces != nil && !rule.namespaces.Has(env.Namespace) {
		return false
	}
	if rule.namespaceSelector != nil && (!env.NamespaceFound || !rule.namespaceSelector.Matches(labels.Set(env.NamespaceLabels))) {
		return false
	}
	if rule.selector != nil && !rule.selector.Matches(labels.Set(pvc.Labels)) {
		return false
	}
	if rule.storageClassNames != nil && !rule.storageClassNames.Has(StorageClassName(pvc)) {
		return false
	}
	if rule.pvcs != nil && (pvc.Name == "" || !rule.pvcs.Has(env.Namespace+"/"+pvc.Name)) {
		return false
	}
	return true
}

func unknownJobWarnings(matched []compiledRule, env PVCEnvironment) []string {
	var warnings []string
	for _, rule := range matched {
		for _, job := range rule.jobs {
			if env.KnownJobs != nil && !env.KnownJobs.Has(job) {
				warnings = append(warnings, fmt.Sprintf("rule %q names recurring job %q, but no RecurringJob has that name: nothing will run for it", rule.name, job))
			}
		}
		for _, group := range rule.groups {
			if env.KnownGroups != nil && !env.KnownGroups.Has(group) {
				warnings = append(warnings, fmt.Sprintf("rule %q names group %q, but no RecurringJob is in that group: nothing will run for it", rule.name, group))
			}
		}
	}
	return warnings
}

// parseManagedLabels reads the annotation; only recurring labels count, so an edited annotation can
// never make backupguard remove an unrelated label.
func parseManagedLabels(annotation string) sets.Set[string] {
	managed := sets.New[string]()
	for key := range strings.SplitSeq(annotation, ",") {
		if key = strings.TrimSpace(key); longhorn.IsRecurringLabel(key) {
			managed.Insert(key)
		}
	}
	return managed
}

// DecideVolumeLabels gives a Volume exactly the recurring-job and group labels of its PVC when that PVC
// is a recurring-job source: what Longhorn's own source sync converges to on its next resync, about 30
// seconds later, but at once. A Volume without a source PVC keeps the labels people set on it.
func DecideVolumeLabels(volume *longhorn.Volume, pvc *corev1.PersistentVolumeClaim) LabelDecision {
	current := volume.Labels
	if pvc == nil || pvc.Labels[longhorn.RecurringJobSourceLabel] != longhorn.LabelEnabled {
		return LabelDecision{Labels: current}
	}
	result := map[string]string{}
	for key, value := range current {
		if !longhorn.IsRecurringLabel(key) || key == longhorn.RecurringJobSourceLabel {
			result[key] = value
		}
	}
	hasJobOrGroup := false
	for key, value := range pvc.Labels {
		if longhorn.IsRecurringLabel(key) && key != longhorn.RecurringJobSourceLabel {
			result[key] = value
			hasJobOrGroup = true
		}
	}
	// Longhorn gives a Volume with no recurring label the default group (datastore/longhorn.go
	// labelRecurringJobDefault, right after it mirrors the PVC); removing it would only start a tug of
	// war with Longhorn.
	if value, ok := current[defaultGroupLabel]; ok && !hasJobOrGroup {
		result[defaultGroupLabel] = value
	}
	if len(result) == 0 && current == nil {
		result = nil
	}
	return LabelDecision{Patch: mapPatch("/metadata/labels", current, result), Labels: result}
}

// VolumeBoundToPVC tells whether volume belongs to pvc now, so that the PVC's recurring labels are its
// own. A dynamically provisioned Volume is named "pvc-" + the UID of the PVC it was made for, the only
// link while it is being provisioned. Any other Volume belongs to a PVC only through a PV that is the
// Volume's (the PV status.kubernetesStatus names, or whose CSI volume handle is the Volume) and is bound
// to that very PVC, and only while status.kubernetesStatus.lastPVCRefAt is empty: Longhorn sets it when
// the PVC is gone, and from then on stops copying PVC labels itself (controller/volume_controller.go
// syncPVCRecurringJobLabels). A StatefulSet PVC recreated under the same name is a new PVC, not the
// Released Volume's: its uid differs from the PV's claimRef.uid.
func VolumeBoundToPVC(volume *longhorn.Volume, pvc *corev1.PersistentVolumeClaim, pv *corev1.PersistentVolume) bool {
	if volume == nil || pvc == nil {
		return false
	}
	if uid, ok := PVCUIDOfVolume(volume.Name); ok && uid == string(pvc.UID) {
		return true
	}
	status := volume.Status.KubernetesStatus
	if status.LastPVCRefAt != "" || !pvBoundToClaim(pv, pvc) {
		return false
	}
	return pv.Name == status.PVName || (pv.Spec.CSI != nil && pv.Spec.CSI.VolumeHandle == volume.Name)
}

// pvBoundToClaim is Kubernetes' own test (IsVolumeBoundToClaim in the PV controller): the PV's claimRef
// names the PVC, and its uid, once the binder has set it, is the PVC's.
func pvBoundToClaim(pv *corev1.PersistentVolume, pvc *corev1.PersistentVolumeClaim) bool {
	switch ref := claimRefOf(pv); {
	case ref == nil || ref.Namespace != pvc.Namespace || ref.Name != pvc.Name:
		return false
	default:
		return ref.UID == "" || ref.UID == pvc.UID
	}
}

func claimRefOf(pv *corev1.PersistentVolume) *corev1.ObjectReference {
	if pv == nil {
		return nil
	}
	return pv.Spec.ClaimRef
}

// PVCUIDOfVolume returns the UID of the PVC a dynamically provisioned Volume was made for: its name is
// "pvc-" + that UID. ok is false for other names.
func PVCUIDOfVolume(volumeName string) (string, bool) {
	uid, ok := strings.CutPrefix(volumeName, "pvc-")
	if !ok || !uidPattern.MatchString(uid) {
		return "", false
	}
	return uid, true
}

var uidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
