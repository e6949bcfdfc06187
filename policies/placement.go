package policies

import (
	"fmt"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	"gomodules.xyz/jsonpatch/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	corev1helpers "k8s.io/component-helpers/scheduling/corev1"
	"k8s.io/component-helpers/scheduling/corev1/nodeaffinity"

	"github.com/backupguard/backupguard/longhorn"
)

// Placement vocabulary.
const (
	// NodeAnnotation on a PVC names the node its volume is on, when nothing else tells.
	NodeAnnotation = "backupguard.io/node"
	// HostnameLabel is the well-known node label that required node affinity is pinned with.
	HostnameLabel = corev1.LabelHostname
	// DefaultBackupJobLabel selects the Jobs that are placed; the shipped webhook configuration's
	// objectSelector uses it too.
	DefaultBackupJobLabel = "backupguard.io/backup-job"
)

// UnresolvedNodePolicy says what happens to a backup Job when the node of one of its ReadWriteOnce
// volumes cannot be told.
type UnresolvedNodePolicy string

// The policies for an unresolved node.
const (
	UnresolvedDeny  UnresolvedNodePolicy = "Deny"
	UnresolvedAllow UnresolvedNodePolicy = "Allow"
)

// ClaimFacts is what the cluster says about one PVC a backup Job mounts.
type ClaimFacts struct {
	// PVC is nil when it does not exist.
	PVC *corev1.PersistentVolumeClaim
	// Pods are the pods that mount the PVC; placement itself leaves out terminated ones and the Job's own.
	Pods []MountingPod
	// Volume is the PVC's Longhorn Volume, nil when it is not a Longhorn volume or is not known.
	Volume *longhorn.Volume
	// PV is the bound PersistentVolume, nil when not known.
	PV *corev1.PersistentVolume
}

// MountingPod is what placement reads of a pod that mounts a PVC.
type MountingPod struct {
	Name     string
	NodeName string
	Phase    corev1.PodPhase
	// JobLabels are those of its labels that name a Job (JobNameLabels).
	JobLabels map[string]string
}

// MountingPodOf is pod as placement reads it.
func MountingPodOf(pod *corev1.Pod) MountingPod {
	mounting := MountingPod{Name: pod.Name, NodeName: pod.Spec.NodeName, Phase: pod.Status.Phase}
	for _, label := range JobNameLabels {
		if value, found := pod.Labels[label]; found {
			if mounting.JobLabels == nil {
				mounting.JobLabels = map[string]string{}
			}
			mounting.JobLabels[label] = value
		}
	}
	return mounting
}

// PlacementInput is everything the placement of one backup Job depends on.
type PlacementInput struct {
	Job *batchv1.Job
	// Claims holds the facts of each PVC the Job's pod template mounts, by claim name.
	Claims map[string]ClaimFacts
	// Nodes holds the Node objects of the nodes the claims point at, by name (missing when unknown).
	Nodes      map[string]*corev1.Node
	Unresolved UnresolvedNodePolicy
	// Offline says the facts come from manifest files: what only the cluster knows (a PVC not in the
	// input, its phase, where its volume is attached) is reported as a warning instead of denied.
	Offline bool
}

// Placement is the verdict on a backup Job: violations (deny), or a patch that pins it to the node of
// its ReadWriteOnce volumes and tolerates that node's taints.
type Placement struct {
	Node     string
	Patch    []jsonpatch.Operation
	Errors   field.ErrorList
	Warnings []string
}

// ClaimNames lists the PVCs a pod template mounts, in the order of its volumes, each once.
func ClaimNames(spec *corev1.PodSpec) []string {
	var names []string
	for _, volume := range spec.Volumes {
		if volume.PersistentVolumeClaim != nil && !slices.Contains(names, volume.PersistentVolumeClaim.ClaimName) {
			names = append(names, volume.PersistentVolumeClaim.ClaimName)
		}
	}
	return names
}

// NodesOfInterest lists the nodes the facts point at, whose Node objects placement needs.
func NodesOfInterest(input PlacementInput) []string {
	nodes := sets.New[string]()
	for _, facts := range input.Claims {
		for _, pod := range facts.Pods {
			if pod.NodeName != "" {
				nodes.Insert(pod.NodeName)
			}
		}
		if facts.Volume != nil && facts.Volume.Status.CurrentNodeID != "" {
			nodes.Insert(facts.Volume.Status.CurrentNodeID)
		}
		if node := pvNode(facts.PV); node != "" {
			nodes.Insert(node)
		}
		if facts.PVC != nil && facts.PVC.Annotations[NodeAnnotation] != "" {
			nodes.Insert(facts.PVC.Annotations[NodeAnnotation])
		}
	}
	return sets.List(nodes)
}

// claimNode is where one PVC pins the Job.
type claimNode struct {
	claim, node, source string
}

// PlaceBackupJob pins a backup Job to the node where its ReadWriteOnce volumes are attached, because a
// second pod can mount such a volume only there (elsewhere it hangs with a Multi-Attach error). The node
// of each volume is, in order: a running pod that mounts it, the Longhorn Volume's current node, the
// PV's required node affinity, the PVC's backupguard.io/node annotation. A detached Longhorn volume
// needs no pin. ReadWriteMany and ReadOnlyMany volumes are ignored.
func PlaceBackupJob(input PlacementInput) Placement {
	var placement Placement
	podSpec := &input.Job.Spec.Template.Spec
	volumesPath := field.NewPath("spec", "template", "spec", "volumes")
	var pins []claimNode
	for i, volume := range podSpec.Volumes {
		if volume.PersistentVolumeClaim == nil {
			continue
		}
		claim := volume.PersistentVolumeClaim.ClaimName
		path := volumesPath.Index(i).Child("persistentVolumeClaim", "claimName")
		facts := input.Claims[claim]
		facts.Pods = competingPods(facts.Pods, input.Job)
		pin, errs, warnings := resolveClaimNode(claim, facts, input.Unresolved, input.Offline, path)
		placement.Errors = append(placement.Errors, errs...)
		placement.Warnings = append(placement.Warnings, warnings...)
		if pin.node != "" && !slices.ContainsFunc(pins, func(p claimNode) bool { return p.claim == claim }) {
			pins = append(pins, pin)
		}
	}
	if len(placement.Errors) > 0 || len(pins) == 0 {
		return placement
	}
	for _, pin := range pins[1:] {
		if pin.node != pins[0].node {
			placement.Errors = append(placement.Errors, field.Forbidden(volumesPath, fmt.Sprintf(
				"no single node can mount every ReadWriteOnce volume: PVC %q is on node %q (%s) and PVC %q on node %q (%s)",
				pins[0].claim, pins[0].node, pins[0].source, pin.claim, pin.node, pin.source)))
			return placement
		}
	}
	placement.Node = pins[0].node
	node := input.Nodes[placement.Node]
	if node == nil {
		placement.Warnings = append(placement.Warnings, fmt.Sprintf("node %q is not known, so its taints could not be tolerated", placement.Node))
		node = &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: placement.Node, Labels: map[string]string{HostnameLabel: placement.Node}}}
	}
	if err := checkExistingPins(podSpec, node, pins[0]); err != nil {
		placement.Errors = append(placement.Errors, err)
		return placement
	}
	placement.Patch = append(affinityPatch(podSpec, hostnameOf(node)), tolerationsPatch(podSpec, node)...)
	return placement
}

func resolveClaimNode(claim string, facts ClaimFacts, unresolved UnresolvedNodePolicy, offline bool, path *field.Path) (claimNode, field.ErrorList, []string) {
	pvc := facts.PVC
	switch {
	case pvc == nil && offline:
		return claimNode{}, nil, []string{fmt.Sprintf("PVC %q is not in the input: where it is attached is checked in the cluster", claim)}
	case pvc == nil:
		return claimNode{}, field.ErrorList{field.NotFound(path, claim)}, nil
	case !needsPin(pvc):
		return claimNode{}, nil, nil
	case offline && pvc.Status.Phase == "":
		// Manifests carry no status; whether the PVC is Bound is the cluster's to say.
	case pvc.Status.Phase != corev1.ClaimBound:
		return claimNode{}, field.ErrorList{field.Invalid(path, claim, fmt.Sprintf("PVC is %s, not Bound: the backup pod would wait for it forever", phaseOf(pvc)))}, nil
	}
	readWriteOncePod := slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteOncePod)
	if readWriteOncePod && len(facts.Pods) > 0 {
		return claimNode{}, field.ErrorList{field.Forbidden(path, fmt.Sprintf(
			"PVC %q is ReadWriteOncePod and in use by pod %q: it cannot be mounted by a second pod", claim, facts.Pods[0].Name))}, nil
	}
	tried := []string{"no running pod mounts it"}
	for _, pod := range facts.Pods {
		if pod.Phase == corev1.PodRunning && pod.NodeName != "" {
			return claimNode{claim: claim, node: pod.NodeName, source: fmt.Sprintf("pod %s runs there", pod.Name)}, nil, nil
		}
	}
	if volume := facts.Volume; volume != nil {
		switch {
		case volume.Status.CurrentNodeID != "":
			return claimNode{claim: claim, node: volume.Status.CurrentNodeID, source: fmt.Sprintf("Longhorn volume %s is attached there", volume.Name)}, nil, nil
		case volume.Status.State == "detached":
			// A detached Longhorn volume attaches wherever the pod is scheduled.
			return claimNode{}, nil, nil
		}
		tried = append(tried, fmt.Sprintf("Longhorn volume %s is %s on no node", volume.Name, stateOf(volume)))
	} else {
		tried = append(tried, "no Longhorn volume is known for it")
	}
	if node := pvNode(facts.PV); node != "" {
		return claimNode{claim: claim, node: node, source: fmt.Sprintf("PV %s requires it", facts.PV.Name)}, nil, nil
	}
	tried = append(tried, "its PV has no required node affinity on "+HostnameLabel)
	if node := pvc.Annotations[NodeAnnotation]; node != "" {
		return claimNode{claim: claim, node: node, source: "its " + NodeAnnotation + " annotation says so"}, nil, nil
	}
	tried = append(tried, "it has no "+NodeAnnotation+" annotation")
	if offline {
		return claimNode{}, nil, []string{fmt.Sprintf("the node of ReadWriteOnce PVC %q is resolved in the cluster (running pods, Longhorn attachment, PV affinity)", claim)}
	}
	message := fmt.Sprintf("cannot tell which node ReadWriteOnce PVC %q is on: %s", claim, strings.Join(tried, ", "))
	if unresolved == UnresolvedAllow {
		return claimNode{}, nil, []string{message + "; the Job is left unpinned (backupJobs.unresolvedNode: Allow)"}
	}
	return claimNode{}, field.ErrorList{field.Invalid(path, claim, message+"; annotate the PVC with "+NodeAnnotation+", or set backupJobs.unresolvedNode: Allow")}, nil
}

// JobNameLabels are the labels the Job controller puts on a Job's pods.
var JobNameLabels = []string{batchv1.JobNameLabel, "job-name"}

// competingPods are the pods that hold a volume against the backup: not terminated, and not the Job's
// own (a Job re-created under the same name would otherwise compete with itself).
func competingPods(pods []MountingPod, job *batchv1.Job) []MountingPod {
	var competing []MountingPod
	for _, pod := range pods {
		if pod.Phase == corev1.PodSucceeded || pod.Phase == corev1.PodFailed {
			continue
		}
		if job.Name != "" && slices.ContainsFunc(JobNameLabels, func(label string) bool { return pod.JobLabels[label] == job.Name }) {
			continue
		}
		competing = append(competing, pod)
	}
	return competing
}

// needsPin tells whether a PVC can be mounted by one node only.
func needsPin(pvc *corev1.PersistentVolumeClaim) bool {
	modes := pvc.Spec.AccessModes
	if slices.Contains(modes, corev1.ReadWriteMany) || (slices.Contains(modes, corev1.ReadOnlyMany) && !slices.Contains(modes, corev1.ReadWriteOnce)) {
		return false
	}
	return slices.Contains(modes, corev1.ReadWriteOnce) || slices.Contains(modes, corev1.ReadWriteOncePod)
}

func phaseOf(pvc *corev1.PersistentVolumeClaim) string {
	if pvc.Status.Phase == "" {
		return string(corev1.ClaimPending)
	}
	return string(pvc.Status.Phase)
}

func stateOf(volume *longhorn.Volume) string {
	if volume.Status.State == "" {
		return "in no known state"
	}
	return volume.Status.State
}

// pvNode is the single node a PV's required node affinity allows by hostname, "" when none.
func pvNode(pv *corev1.PersistentVolume) string {
	if pv == nil || pv.Spec.NodeAffinity == nil || pv.Spec.NodeAffinity.Required == nil {
		return ""
	}
	for _, term := range pv.Spec.NodeAffinity.Required.NodeSelectorTerms {
		for _, expression := range term.MatchExpressions {
			if expression.Key == HostnameLabel && expression.Operator == corev1.NodeSelectorOpIn && len(expression.Values) == 1 {
				return expression.Values[0]
			}
		}
	}
	return ""
}

func hostnameOf(node *corev1.Node) string {
	if hostname := node.Labels[HostnameLabel]; hostname != "" {
		return hostname
	}
	return node.Name
}

// checkExistingPins refuses a Job whose own nodeName, nodeSelector or required node affinity already
// excludes the node its volumes are on.
func checkExistingPins(spec *corev1.PodSpec, node *corev1.Node, pin claimNode) *field.Error {
	specPath := field.NewPath("spec", "template", "spec")
	why := fmt.Sprintf("PVC %q is on node %q (%s)", pin.claim, pin.node, pin.source)
	if spec.NodeName != "" && spec.NodeName != node.Name {
		return field.Invalid(specPath.Child("nodeName"), spec.NodeName, "pins the Job to another node, but "+why)
	}
	if len(spec.NodeSelector) > 0 && !labels.SelectorFromSet(spec.NodeSelector).Matches(labels.Set(node.Labels)) {
		return field.Invalid(specPath.Child("nodeSelector"), labels.Set(spec.NodeSelector).String(), "excludes the node, but "+why)
	}
	if affinity := spec.Affinity; affinity != nil && affinity.NodeAffinity != nil && affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		selector, err := nodeaffinity.NewNodeSelector(affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution)
		path := specPath.Child("affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution")
		if err != nil {
			return field.Invalid(path, "", err.Error())
		}
		if !selector.Match(node) {
			return field.Invalid(path, "", "excludes the node, but "+why)
		}
	}
	return nil
}

// affinityPatch adds a required "hostname In [node]" expression: to every existing node selector term
// (terms are ORed, so each must be narrowed), or as a new term when there is none.
func affinityPatch(spec *corev1.PodSpec, hostname string) []jsonpatch.Operation {
	const base = "/spec/template/spec"
	expression := corev1.NodeSelectorRequirement{Key: HostnameLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{hostname}}
	required := &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{expression}}}}
	switch {
	case spec.Affinity == nil:
		return []jsonpatch.Operation{{Operation: "add", Path: base + "/affinity", Value: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: required}}}}
	case spec.Affinity.NodeAffinity == nil:
		return []jsonpatch.Operation{{Operation: "add", Path: base + "/affinity/nodeAffinity", Value: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: required}}}
	case spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil || len(spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms) == 0:
		return []jsonpatch.Operation{{Operation: "add", Path: base + "/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution", Value: required}}
	}
	var operations []jsonpatch.Operation
	for i, term := range spec.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		termPath := fmt.Sprintf("%s/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/%d/matchExpressions", base, i)
		if term.MatchExpressions == nil {
			operations = append(operations, jsonpatch.Operation{Operation: "add", Path: termPath, Value: []corev1.NodeSelectorRequirement{expression}})
		} else {
			operations = append(operations, jsonpatch.Operation{Operation: "add", Path: termPath + "/-", Value: expression})
		}
	}
	return operations
}

// nodeConditionTaintPrefix marks the taints Kubernetes sets for a node's condition (not ready,
// unreachable, under pressure, cordoned). They pass; a backup pod should wait for them rather than run
// on a sick node, so they are never tolerated.
const nodeConditionTaintPrefix = "node.kubernetes.io/"

// tolerationsPatch tolerates the node's NoSchedule and NoExecute taints that the pod does not tolerate
// yet, so the pod can run on a dedicated node (the tainted-node case k8up left open).
func tolerationsPatch(spec *corev1.PodSpec, node *corev1.Node) []jsonpatch.Operation {
	var missing []corev1.Toleration
	for i := range node.Spec.Taints {
		taint := &node.Spec.Taints[i]
		if taint.Effect == corev1.TaintEffectPreferNoSchedule || strings.HasPrefix(taint.Key, nodeConditionTaintPrefix) ||
			corev1helpers.TolerationsTolerateTaint(logr.Discard(), spec.Tolerations, taint, false) {
			continue
		}
		toleration := corev1.Toleration{Key: taint.Key, Operator: corev1.TolerationOpEqual, Value: taint.Value, Effect: taint.Effect}
		if taint.Value == "" {
			toleration.Operator, toleration.Value = corev1.TolerationOpExists, ""
		}
		missing = append(missing, toleration)
	}
	if len(missing) == 0 {
		return nil
	}
	const path = "/spec/template/spec/tolerations"
	if spec.Tolerations == nil {
		return []jsonpatch.Operation{{Operation: "add", Path: path, Value: missing}}
	}
	operations := make([]jsonpatch.Operation, len(missing))
	for i, toleration := range missing {
		operations[i] = jsonpatch.Operation{Operation: "add", Path: path + "/-", Value: toleration}
	}
	return operations
}
