package policies

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"gomodules.xyz/jsonpatch/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/backupguard/backupguard/longhorn"
)

// jobBuilder makes backup Jobs for placement tests.
type jobBuilder struct{ job batchv1.Job }

func makeBackupJob(claims ...string) *jobBuilder {
	b := &jobBuilder{job: batchv1.Job{ObjectMeta: metav1.ObjectMeta{Name: "backup", Namespace: "shop", Labels: map[string]string{DefaultBackupJobLabel: "true"}}}}
	for _, claim := range claims {
		b.job.Spec.Template.Spec.Volumes = append(b.job.Spec.Template.Spec.Volumes, corev1.Volume{
			Name: "v-" + claim, VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}},
		})
	}
	return b
}

func (b *jobBuilder) NodeName(n string) *jobBuilder { b.job.Spec.Template.Spec.NodeName = n; return b }
func (b *jobBuilder) NodeSelector(s map[string]string) *jobBuilder {
	b.job.Spec.Template.Spec.NodeSelector = s
	return b
}
func (b *jobBuilder) Affinity(a *corev1.Affinity) *jobBuilder {
	b.job.Spec.Template.Spec.Affinity = a
	return b
}
func (b *jobBuilder) Tolerations(t ...corev1.Toleration) *jobBuilder {
	b.job.Spec.Template.Spec.Tolerations = t
	return b
}
func (b *jobBuilder) EmptyDir(name string) *jobBuilder {
	b.job.Spec.Template.Spec.Volumes = append(b.job.Spec.Template.Spec.Volumes, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	return b
}
func (b *jobBuilder) Obj() *batchv1.Job { return b.job.DeepCopy() }

func boundPVC(name string, modes ...corev1.PersistentVolumeAccessMode) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"},
		Spec:       corev1.PersistentVolumeClaimSpec{AccessModes: modes, VolumeName: "pv-" + name},
		Status:     corev1.PersistentVolumeClaimStatus{Phase: corev1.ClaimBound},
	}
}

func annotatedPVC(name, node string) *corev1.PersistentVolumeClaim {
	pvc := boundPVC(name, corev1.ReadWriteOnce)
	pvc.Annotations = map[string]string{NodeAnnotation: node}
	return pvc
}

func podOn(name, node string, phase corev1.PodPhase) MountingPod {
	return MountingPodOf(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "shop"}, Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: phase}})
}

func longhornVolume(name, node, state string) *longhorn.Volume {
	return &longhorn.Volume{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "longhorn-system"}, Status: longhorn.VolumeStatus{CurrentNodeID: node, State: state}}
}

func pvPinnedTo(name, node string) *corev1.PersistentVolume {
	return &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: corev1.PersistentVolumeSpec{NodeAffinity: &corev1.VolumeNodeAffinity{
		Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
			{Key: HostnameLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{node}},
		}}}},
	}}}
}

func node(name string, taints ...corev1.Taint) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{HostnameLabel: name, "zone": "a"}}, Spec: corev1.NodeSpec{Taints: taints}}
}

func hostnameIn(node string) corev1.NodeSelectorRequirement {
	return corev1.NodeSelectorRequirement{Key: HostnameLabel, Operator: corev1.NodeSelectorOpIn, Values: []string{node}}
}

// pinnedAffinity is the patch that pins a Job without any affinity to node.
func pinnedAffinity(node string) jsonpatch.Operation {
	return jsonpatch.Operation{Operation: "add", Path: "/spec/template/spec/affinity", Value: &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{
		RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{hostnameIn(node)}}}},
	}}}
}

var claimPath = field.NewPath("spec", "template", "spec", "volumes")

func TestPlaceBackupJob(t *testing.T) {
	nodes := map[string]*corev1.Node{"n1": node("n1"), "n2": node("n2")}
	cases := map[string]struct {
		input PlacementInput
		want  Placement
	}{
		"a running pod that mounts the PVC pins the Job to its node": {
			input: PlacementInput{Job: makeBackupJob("data").Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOnce), Pods: []MountingPod{podOn("app-0", "n1", corev1.PodRunning)}, Volume: longhornVolume("pv-data", "n2", "attached")},
			}},
			want: Placement{Node: "n1", Patch: []jsonpatch.Operation{pinnedAffinity("n1")}},
		},
		"without a running pod the Longhorn volume's current node pins it": {
			input: PlacementInput{Job: makeBackupJob("data").Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOnce), Pods: []MountingPod{podOn("starting", "n1", corev1.PodPending)}, Volume: longhornVolume("pv-data", "n2", "attached"), PV: pvPinnedTo("pv-data", "n1")},
			}},
			want: Placement{Node: "n2", Patch: []jsonpatch.Operation{pinnedAffinity("n2")}},
		},
		"a detached Longhorn volume needs no pin": {
			input: PlacementInput{Job: makeBackupJob("data").Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"data": {PVC: annotatedPVC("data", "n1"), Volume: longhornVolume("pv-data", "", "detached")},
			}},
			want: Placement{},
		},
		"without a volume node the PV's required hostname affinity pins it": {
			input: PlacementInput{Job: makeBackupJob("data").Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"data": {PVC: annotatedPVC("data", "n1"), PV: pvPinnedTo("pv-data", "n2")},
			}},
			want: Placement{Node: "n2", Patch: []jsonpatch.Operation{pinnedAffinity("n2")}},
		},
		"the PVC's backupguard.io/node annotation comes last": {
			input: PlacementInput{Job: makeBackupJob("data").Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"data": {PVC: annotatedPVC("data", "n1"), Volume: longhornVolume("pv-data", "", "attaching")},
			}},
			want: Placement{Node: "n1", Patch: []jsonpatch.Operation{pinnedAffinity("n1")}},
		},
		"an unresolved node is denied, listing what was tried": {
			input: PlacementInput{Job: makeBackupJob("data").Obj(), Nodes: nodes, Unresolved: UnresolvedDeny, Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOnce)},
			}},
			want: Placement{Errors: field.ErrorList{field.Invalid(claimPath.Index(0).Child("persistentVolumeClaim", "claimName"), "data",
				`cannot tell which node ReadWriteOnce PVC "data" is on: no running pod mounts it, no Longhorn volume is known for it, its PV has no required node affinity on kubernetes.io/hostname, it has no backupguard.io/node annotation; annotate the PVC with backupguard.io/node, or set backupJobs.unresolvedNode: Allow`)}},
		},
		"an unresolved node is allowed unpinned with a warning when the config says Allow": {
			input: PlacementInput{Job: makeBackupJob("data").Obj(), Nodes: nodes, Unresolved: UnresolvedAllow, Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOnce), Volume: longhornVolume("pv-data", "", "")},
			}},
			want: Placement{Warnings: []string{`cannot tell which node ReadWriteOnce PVC "data" is on: no running pod mounts it, Longhorn volume pv-data is in no known state on no node, its PV has no required node affinity on kubernetes.io/hostname, it has no backupguard.io/node annotation; the Job is left unpinned (backupJobs.unresolvedNode: Allow)`}},
		},
		"ReadWriteMany and ReadOnlyMany volumes are ignored": {
			input: PlacementInput{Job: makeBackupJob("shared", "readonly").EmptyDir("scratch").Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"shared":   {PVC: boundPVC("shared", corev1.ReadWriteMany, corev1.ReadWriteOnce), Pods: []MountingPod{podOn("a", "n1", corev1.PodRunning)}},
				"readonly": {PVC: boundPVC("readonly", corev1.ReadOnlyMany), Pods: []MountingPod{podOn("b", "n2", corev1.PodRunning)}},
			}},
			want: Placement{},
		},
		"a ReadWriteOncePod volume in use by another pod is denied": {
			input: PlacementInput{Job: makeBackupJob("data").Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOncePod), Pods: []MountingPod{podOn("app-0", "n1", corev1.PodRunning)}},
			}},
			want: Placement{Errors: field.ErrorList{field.Forbidden(claimPath.Index(0).Child("persistentVolumeClaim", "claimName"),
				`PVC "data" is ReadWriteOncePod and in use by pod "app-0": it cannot be mounted by a second pod`)}},
		},
		"a free ReadWriteOncePod volume is pinned like a ReadWriteOnce one": {
			input: PlacementInput{Job: makeBackupJob("data").Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOncePod), Volume: longhornVolume("pv-data", "n2", "attached")},
			}},
			want: Placement{Node: "n2", Patch: []jsonpatch.Operation{pinnedAffinity("n2")}},
		},
		"the Job's own pods and terminated pods neither pin the Job nor hold a ReadWriteOncePod volume": {
			input: PlacementInput{Job: makeBackupJob("data").Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOncePod), Volume: longhornVolume("pv-data", "n2", "attached"), Pods: []MountingPod{
					withLabels(podOn("backup-abc12", "n1", corev1.PodRunning), map[string]string{batchv1.JobNameLabel: "backup"}),
					withLabels(podOn("backup-old", "n1", corev1.PodRunning), map[string]string{"job-name": "backup"}),
					podOn("finished", "n1", corev1.PodSucceeded),
					podOn("crashed", "n1", corev1.PodFailed),
				}},
			}},
			want: Placement{Node: "n2", Patch: []jsonpatch.Operation{pinnedAffinity("n2")}},
		},
		"a PVC that is not Bound is denied": {
			input: PlacementInput{Job: makeBackupJob("data").Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"data": {PVC: &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "data"}, Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}}}},
			}},
			want: Placement{Errors: field.ErrorList{field.Invalid(claimPath.Index(0).Child("persistentVolumeClaim", "claimName"), "data", "PVC is Pending, not Bound: the backup pod would wait for it forever")}},
		},
		"a PVC that does not exist is denied": {
			input: PlacementInput{Job: makeBackupJob("data").Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{"data": {}}},
			want:  Placement{Errors: field.ErrorList{field.NotFound(claimPath.Index(0).Child("persistentVolumeClaim", "claimName"), "data")}},
		},
		"two volumes on different nodes are denied": {
			input: PlacementInput{Job: makeBackupJob("a", "b").Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"a": {PVC: boundPVC("a", corev1.ReadWriteOnce), Volume: longhornVolume("pv-a", "n1", "attached")},
				"b": {PVC: boundPVC("b", corev1.ReadWriteOnce), Volume: longhornVolume("pv-b", "n2", "attached")},
			}},
			want: Placement{Errors: field.ErrorList{field.Forbidden(claimPath,
				`no single node can mount every ReadWriteOnce volume: PVC "a" is on node "n1" (Longhorn volume pv-a is attached there) and PVC "b" on node "n2" (Longhorn volume pv-b is attached there)`)}},
		},
		"two volumes on one node give one pin": {
			input: PlacementInput{Job: makeBackupJob("a", "b").Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"a": {PVC: boundPVC("a", corev1.ReadWriteOnce), Volume: longhornVolume("pv-a", "n1", "attached")},
				"b": {PVC: boundPVC("b", corev1.ReadWriteOnce), Pods: []MountingPod{podOn("app", "n1", corev1.PodRunning)}},
			}},
			want: Placement{Node: "n1", Patch: []jsonpatch.Operation{pinnedAffinity("n1")}},
		},
		"a Job already pinned to another node by nodeName is denied": {
			input: PlacementInput{Job: makeBackupJob("data").NodeName("n2").Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOnce), Volume: longhornVolume("pv-data", "n1", "attached")},
			}},
			want: Placement{Node: "n1", Errors: field.ErrorList{field.Invalid(field.NewPath("spec", "template", "spec", "nodeName"), "n2",
				`pins the Job to another node, but PVC "data" is on node "n1" (Longhorn volume pv-data is attached there)`)}},
		},
		"a nodeSelector that excludes the node is denied": {
			input: PlacementInput{Job: makeBackupJob("data").NodeSelector(map[string]string{"zone": "b"}).Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOnce), Volume: longhornVolume("pv-data", "n1", "attached")},
			}},
			want: Placement{Node: "n1", Errors: field.ErrorList{field.Invalid(field.NewPath("spec", "template", "spec", "nodeSelector"), "zone=b",
				`excludes the node, but PVC "data" is on node "n1" (Longhorn volume pv-data is attached there)`)}},
		},
		"a nodeSelector the node satisfies is kept and the hostname pin added": {
			input: PlacementInput{Job: makeBackupJob("data").NodeSelector(map[string]string{"zone": "a"}).Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOnce), Volume: longhornVolume("pv-data", "n1", "attached")},
			}},
			want: Placement{Node: "n1", Patch: []jsonpatch.Operation{pinnedAffinity("n1")}},
		},
		"required node affinity that excludes the node is denied": {
			input: PlacementInput{Job: makeBackupJob("data").Affinity(&corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpNotIn, Values: []string{"a"}}}}},
			}}}).Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOnce), Volume: longhornVolume("pv-data", "n1", "attached")},
			}},
			want: Placement{Node: "n1", Errors: field.ErrorList{field.Invalid(field.NewPath("spec", "template", "spec", "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution"), "",
				`excludes the node, but PVC "data" is on node "n1" (Longhorn volume pv-data is attached there)`)}},
		},
		"the hostname expression is added to every existing node selector term": {
			input: PlacementInput{Job: makeBackupJob("data").Affinity(&corev1.Affinity{
				PodAntiAffinity: &corev1.PodAntiAffinity{},
				NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{
					{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a"}}}},
					{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}}},
				}}},
			}).Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOnce), Volume: longhornVolume("pv-data", "n1", "attached")},
			}},
			want: Placement{Node: "n1", Patch: []jsonpatch.Operation{
				{Operation: "add", Path: "/spec/template/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/0/matchExpressions/-", Value: hostnameIn("n1")},
				{Operation: "add", Path: "/spec/template/spec/affinity/nodeAffinity/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms/1/matchExpressions", Value: []corev1.NodeSelectorRequirement{hostnameIn("n1")}},
			}},
		},
		"affinity without node affinity gets one": {
			input: PlacementInput{Job: makeBackupJob("data").Affinity(&corev1.Affinity{PodAffinity: &corev1.PodAffinity{}}).Obj(), Nodes: nodes, Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOnce), Volume: longhornVolume("pv-data", "n1", "attached")},
			}},
			want: Placement{Node: "n1", Patch: []jsonpatch.Operation{{Operation: "add", Path: "/spec/template/spec/affinity/nodeAffinity", Value: &corev1.NodeAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{hostnameIn("n1")}}}},
			}}}},
		},
		"the node's NoSchedule and NoExecute taints are tolerated, not PreferNoSchedule nor node-condition taints": {
			input: PlacementInput{Job: makeBackupJob("data").Obj(), Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOnce), Volume: longhornVolume("pv-data", "storage-1", "attached")},
			}, Nodes: map[string]*corev1.Node{"storage-1": node("storage-1",
				corev1.Taint{Key: "dedicated", Value: "storage", Effect: corev1.TaintEffectNoSchedule},
				corev1.Taint{Key: "maintenance", Effect: corev1.TaintEffectNoExecute},
				corev1.Taint{Key: "soft", Value: "x", Effect: corev1.TaintEffectPreferNoSchedule},
				corev1.Taint{Key: "node.kubernetes.io/not-ready", Effect: corev1.TaintEffectNoSchedule},
				corev1.Taint{Key: "node.kubernetes.io/unschedulable", Effect: corev1.TaintEffectNoSchedule},
			)}},
			want: Placement{Node: "storage-1", Patch: []jsonpatch.Operation{pinnedAffinity("storage-1"), {Operation: "add", Path: "/spec/template/spec/tolerations", Value: []corev1.Toleration{
				{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "storage", Effect: corev1.TaintEffectNoSchedule},
				{Key: "maintenance", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
			}}}},
		},
		"existing tolerations are kept and only the missing ones appended": {
			input: PlacementInput{Job: makeBackupJob("data").Tolerations(corev1.Toleration{Key: "dedicated", Operator: corev1.TolerationOpExists}).Obj(), Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOnce), Volume: longhornVolume("pv-data", "storage-1", "attached")},
			}, Nodes: map[string]*corev1.Node{"storage-1": node("storage-1",
				corev1.Taint{Key: "dedicated", Value: "storage", Effect: corev1.TaintEffectNoSchedule},
				corev1.Taint{Key: "gpu", Value: "true", Effect: corev1.TaintEffectNoExecute},
			)}},
			want: Placement{Node: "storage-1", Patch: []jsonpatch.Operation{pinnedAffinity("storage-1"),
				{Operation: "add", Path: "/spec/template/spec/tolerations/-", Value: corev1.Toleration{Key: "gpu", Operator: corev1.TolerationOpEqual, Value: "true", Effect: corev1.TaintEffectNoExecute}},
			}},
		},
		"a node whose hostname label differs from its name is pinned by the label": {
			input: PlacementInput{Job: makeBackupJob("data").Obj(), Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOnce), Volume: longhornVolume("pv-data", "ip-10-0-0-1", "attached")},
			}, Nodes: map[string]*corev1.Node{"ip-10-0-0-1": {ObjectMeta: metav1.ObjectMeta{Name: "ip-10-0-0-1", Labels: map[string]string{HostnameLabel: "worker-1"}}}}},
			want: Placement{Node: "ip-10-0-0-1", Patch: []jsonpatch.Operation{pinnedAffinity("worker-1")}},
		},
		"an unknown node is pinned by name with a warning about taints": {
			input: PlacementInput{Job: makeBackupJob("data").Obj(), Nodes: map[string]*corev1.Node{}, Claims: map[string]ClaimFacts{
				"data": {PVC: boundPVC("data", corev1.ReadWriteOnce), Volume: longhornVolume("pv-data", "gone", "attached")},
			}},
			want: Placement{Node: "gone", Patch: []jsonpatch.Operation{pinnedAffinity("gone")}, Warnings: []string{`node "gone" is not known, so its taints could not be tolerated`}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			before := tc.input.Job.DeepCopy()
			got := PlaceBackupJob(tc.input)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("placement (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tc.input.Job); diff != "" {
				t.Errorf("the Job was modified (-before +after):\n%s", diff)
			}
		})
	}
}

func TestNodesOfInterest(t *testing.T) {
	input := PlacementInput{Claims: map[string]ClaimFacts{
		"a": {PVC: annotatedPVC("a", "n4"), Pods: []MountingPod{podOn("p", "n1", corev1.PodRunning), podOn("q", "", corev1.PodPending)}},
		"b": {Volume: longhornVolume("v", "n2", "attached"), PV: pvPinnedTo("pv", "n3")},
	}}
	if diff := cmp.Diff([]string{"n1", "n2", "n3", "n4"}, NodesOfInterest(input)); diff != "" {
		t.Errorf("nodes (-want +got):\n%s", diff)
	}
}

func TestBackupJobRules(t *testing.T) {
	rules, errs := CompileBackupJobRules(BackupJobsConfig{}, field.NewPath("backupJobs"))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	if !rules.Selects(makeBackupJob().Obj()) || rules.Selects(&batchv1.Job{}) || rules.Unresolved != UnresolvedDeny {
		t.Errorf("defaults: want the backupguard.io/backup-job=true selector and Deny, got %+v", rules)
	}
	_, errs = CompileBackupJobRules(BackupJobsConfig{UnresolvedNode: "Maybe", Selector: &metav1.LabelSelector{}}, field.NewPath("backupJobs"))
	want := field.ErrorList{
		field.NotSupported(field.NewPath("backupJobs", "unresolvedNode"), UnresolvedNodePolicy("Maybe"), []UnresolvedNodePolicy{UnresolvedDeny, UnresolvedAllow}),
		field.Invalid(field.NewPath("backupJobs", "selector"), "&LabelSelector{MatchLabels:map[string]string{},MatchExpressions:[]LabelSelectorRequirement{},}", "must select something: an empty selector would place every Job"),
	}
	if diff := cmp.Diff(want, errs); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func withLabels(pod MountingPod, labels map[string]string) MountingPod {
	pod.JobLabels = labels
	return pod
}
