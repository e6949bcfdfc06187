package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/test/cluster"
)

// world creates, without scheduler or kubelet, what placement reads: Nodes, bound PVs and PVCs,
// running Pods and attached Longhorn Volumes, all named after one fresh namespace.
type world struct {
	t         *testing.T
	namespace string
}

func newWorld(t *testing.T) *world {
	return &world{t: t, namespace: newNamespace(t, nil)}
}

func (w *world) create(object client.Object) {
	w.t.Helper()
	if err := kube.Create(context.Background(), object); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) updateStatus(object client.Object) {
	w.t.Helper()
	if err := kube.Status().Update(context.Background(), object); err != nil {
		w.t.Fatal(err)
	}
}

// node makes a Node named <namespace>-<suffix>.
func (w *world) node(suffix string, taints ...corev1.Taint) string {
	name := w.namespace + "-" + suffix
	w.create(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{corev1.LabelHostname: name}}, Spec: corev1.NodeSpec{Taints: taints}})
	return name
}

type claimSetup struct {
	modes []corev1.PersistentVolumeAccessMode
	// unbound leaves the PVC Pending.
	unbound bool
	// volumeNode and volumeState describe the Longhorn Volume; no Volume when volumeState is "".
	volumeNode, volumeState string
	// pvNode gives the PV a required hostname affinity.
	pvNode string
	// podNode runs a Pod that mounts the PVC there.
	podNode string
	// annotationNode sets backupguard.io/node.
	annotationNode string
}

// claim makes a PVC bound to a Longhorn PV, and the Volume, Pod and annotation the setup asks for.
func (w *world) claim(name string, setup claimSetup) {
	w.t.Helper()
	if setup.modes == nil {
		setup.modes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}
	}
	pvName := "pv-" + w.namespace + "-" + name
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: pvName},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:               corev1.ResourceList{corev1.ResourceStorage: mustQuantity("1Gi")},
			AccessModes:            setup.modes,
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{Driver: longhorn.CSIDriver, VolumeHandle: pvName}},
			ClaimRef:               &corev1.ObjectReference{Namespace: w.namespace, Name: name},
		},
	}
	if setup.pvNode != "" {
		pv.Spec.NodeAffinity = &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
			MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{setup.pvNode}}},
		}}}}
	}
	w.create(pv)
	storageClass := "longhorn"
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: w.namespace},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: setup.modes, StorageClassName: &storageClass, VolumeName: pvName,
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: mustQuantity("1Gi")}},
		},
	}
	if setup.annotationNode != "" {
		pvc.Annotations = map[string]string{"backupguard.io/node": setup.annotationNode}
	}
	w.create(pvc)
	if !setup.unbound {
		pvc.Status.Phase = corev1.ClaimBound
		w.updateStatus(pvc)
	}
	if setup.volumeState != "" {
		volume := newVolume(pvName, nil)
		w.create(volume)
		volume.Status = longhorn.VolumeStatus{State: setup.volumeState, CurrentNodeID: setup.volumeNode}
		w.updateStatus(volume)
	}
	if setup.podNode != "" {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "app-" + name, Namespace: w.namespace},
			Spec: corev1.PodSpec{
				NodeName:   setup.podNode,
				Containers: []corev1.Container{{Name: "app", Image: "registry.example/app:1"}},
				Volumes:    []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name}}}},
			},
		}
		w.create(pod)
		pod.Status.Phase = corev1.PodRunning
		w.updateStatus(pod)
	}
}

// backupJobYAML is a backup Job mounting the claims, labelled for backupguard unless unlabelled.
func (w *world) backupJobYAML(name string, labelled bool, extraSpec string, claims ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: %s\n  namespace: %s\n", name, w.namespace)
	if labelled {
		b.WriteString("  labels:\n    backupguard.io/backup-job: \"true\"\n")
	}
	b.WriteString("spec:\n  template:\n    spec:\n      restartPolicy: Never\n" + extraSpec +
		"      containers:\n        - name: backup\n          image: registry.example/restic:1\n      volumes:\n")
	for _, claim := range claims {
		fmt.Fprintf(&b, "        - name: %s\n          persistentVolumeClaim:\n            claimName: %s\n", claim, claim)
	}
	return b.String()
}

func (w *world) job(name string) *batchv1.Job {
	w.t.Helper()
	job := &batchv1.Job{}
	if err := kube.Get(context.Background(), client.ObjectKey{Namespace: w.namespace, Name: name}, job); err != nil {
		w.t.Fatal(err)
	}
	return job
}

// createJob creates a Job with kubectl and expects want. The world was just built and backupguard's
// cache may not have seen all of it yet (in a cluster, volumes are attached long before a backup Job
// comes), so server-side dry runs are repeated until they give the expected answer first.
func (w *world) createJob(manifest string, want cluster.KubectlResult) {
	w.t.Helper()
	dryRunWant := want
	dryRunWant.Stdout = strings.ReplaceAll(want.Stdout, " created\n", " created (server dry run)\n")
	eventually(w.t, "backupguard's cache to see the world", func() (bool, string) {
		got := testCluster.RunKubectl(manifest, "create", "--dry-run=server", "-f", "-")
		return cmp.Equal(dryRunWant, got), cmp.Diff(dryRunWant, got)
	})
	assertKubectl(w.t, testCluster.RunKubectl(manifest, "create", "-f", "-"), want)
}

func pinnedTo(hostname string) *corev1.Affinity {
	return &corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
		NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{hostname}}}}},
	}}}
}

func assertPlacement(t *testing.T, job *batchv1.Job, affinity *corev1.Affinity, tolerations []corev1.Toleration) {
	t.Helper()
	if diff := cmp.Diff(affinity, job.Spec.Template.Spec.Affinity); diff != "" {
		t.Errorf("affinity (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(tolerations, job.Spec.Template.Spec.Tolerations); diff != "" {
		t.Errorf("tolerations (-want +got):\n%s", diff)
	}
}

func TestBackupJobsArePlacedByEachPrecedenceStep(t *testing.T) {
	w := newWorld(t)
	tainted := w.node("tainted", corev1.Taint{Key: "dedicated", Value: "storage", Effect: corev1.TaintEffectNoSchedule}, corev1.Taint{Key: "draining", Effect: corev1.TaintEffectNoExecute})
	attached, pinned, annotated := w.node("attached"), w.node("pinned"), w.node("annotated")
	w.claim("by-pod", claimSetup{podNode: tainted, volumeState: "attached", volumeNode: attached})
	w.claim("by-volume", claimSetup{volumeState: "attached", volumeNode: attached, pvNode: pinned})
	w.claim("by-pv", claimSetup{volumeState: "attaching", pvNode: pinned, annotationNode: annotated})
	w.claim("by-annotation", claimSetup{annotationNode: annotated})
	w.claim("detached", claimSetup{volumeState: "detached", annotationNode: annotated})

	cases := map[string]struct {
		claim       string
		affinity    *corev1.Affinity
		tolerations []corev1.Toleration
	}{
		"a running pod's node, with the node's taints tolerated": {claim: "by-pod", affinity: pinnedTo(tainted), tolerations: []corev1.Toleration{
			{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "storage", Effect: corev1.TaintEffectNoSchedule},
			{Key: "draining", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
		}},
		"the Longhorn volume's current node":       {claim: "by-volume", affinity: pinnedTo(attached)},
		"the PV's required hostname affinity":      {claim: "by-pv", affinity: pinnedTo(pinned)},
		"the PVC's backupguard.io/node annotation": {claim: "by-annotation", affinity: pinnedTo(annotated)},
		"no pin for a detached Longhorn volume":    {claim: "detached"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			jobName := "backup-" + tc.claim
			w.createJob(w.backupJobYAML(jobName, true, "", tc.claim), cluster.KubectlResult{Stdout: "job.batch/" + jobName + " created\n"})
			assertPlacement(t, w.job(jobName), tc.affinity, tc.tolerations)
		})
	}
}

func TestBackupJobsThatCannotBePlacedAreDenied(t *testing.T) {
	w := newWorld(t)
	a, b := w.node("a"), w.node("b")
	w.claim("on-a", claimSetup{volumeState: "attached", volumeNode: a})
	w.claim("on-b", claimSetup{podNode: b})
	w.claim("exclusive", claimSetup{modes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOncePod}, podNode: a})
	w.claim("pending", claimSetup{unbound: true})
	w.claim("nowhere", claimSetup{volumeState: "attaching"})
	cases := map[string]struct {
		job    string
		stderr string
	}{
		"volumes attached on different nodes": {
			job: w.backupJobYAML("two-nodes", true, "", "on-a", "on-b"),
			stderr: fmt.Sprintf(`The Job "two-nodes" is invalid: spec.template.spec.volumes: Forbidden: no single node can mount every ReadWriteOnce volume: `+
				`PVC "on-a" is on node %q (Longhorn volume pv-%s-on-a is attached there) and PVC "on-b" on node %q (pod app-on-b runs there)`, a, w.namespace, b),
		},
		"a ReadWriteOncePod volume in use": {
			job:    w.backupJobYAML("exclusive", true, "", "exclusive"),
			stderr: `The Job "exclusive" is invalid: spec.template.spec.volumes[0].persistentVolumeClaim.claimName: Forbidden: PVC "exclusive" is ReadWriteOncePod and in use by pod "app-exclusive": it cannot be mounted by a second pod`,
		},
		"a PVC that is not Bound": {
			job:    w.backupJobYAML("pending", true, "", "pending"),
			stderr: `The Job "pending" is invalid: spec.template.spec.volumes[0].persistentVolumeClaim.claimName: Invalid value: "pending": PVC is Pending, not Bound: the backup pod would wait for it forever`,
		},
		"a Job pinned to another node": {
			job: w.backupJobYAML("elsewhere", true, "      nodeName: "+b+"\n", "on-a"),
			stderr: fmt.Sprintf(`The Job "elsewhere" is invalid: spec.template.spec.nodeName: Invalid value: %q: pins the Job to another node, but PVC "on-a" is on node %q (Longhorn volume pv-%s-on-a is attached there)`,
				b, a, w.namespace),
		},
		"a volume whose node cannot be told": {
			job: w.backupJobYAML("unresolved", true, "", "nowhere"),
			stderr: fmt.Sprintf(`The Job "unresolved" is invalid: spec.template.spec.volumes[0].persistentVolumeClaim.claimName: Invalid value: "nowhere": `+
				`cannot tell which node ReadWriteOnce PVC "nowhere" is on: no running pod mounts it, Longhorn volume pv-%s-nowhere is attaching on no node, `+
				`its PV has no required node affinity on kubernetes.io/hostname, it has no backupguard.io/node annotation; annotate the PVC with backupguard.io/node, or set backupJobs.unresolvedNode: Allow`, w.namespace),
		},
		"a PVC that does not exist": {
			job:    w.backupJobYAML("missing", true, "", "no-such-claim"),
			stderr: `The Job "missing" is invalid: spec.template.spec.volumes[0].persistentVolumeClaim.claimName: Not found: "no-such-claim"`,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			w.createJob(tc.job, cluster.KubectlResult{Stderr: tc.stderr + "\n", ExitCode: 1})
		})
	}
}

func TestCronJobShapedBackupJobIsPlaced(t *testing.T) {
	w := newWorld(t)
	target := w.node("target")
	w.claim("data", claimSetup{volumeState: "attached", volumeNode: target})
	// What the CronJob controller creates: the jobTemplate's labels, an owner reference to the CronJob.
	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			Name: "nightly-29012345", Namespace: w.namespace,
			Labels:          map[string]string{"backupguard.io/backup-job": "true", "app": "restic"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "batch/v1", Kind: "CronJob", Name: "nightly", UID: "3f2504e0-4f89-11d3-9a0c-0305e82c3301", Controller: ptrTo(true)}},
		},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyOnFailure,
			Containers:    []corev1.Container{{Name: "backup", Image: "registry.example/restic:1"}},
			Volumes:       []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}},
		}}},
	}
	eventually(t, "backupguard's cache to see the world", func() (bool, string) {
		probe := job.DeepCopy()
		if err := kube.Create(context.Background(), probe, client.DryRunAll); err != nil {
			return false, err.Error()
		}
		return cmp.Equal(pinnedTo(target), probe.Spec.Template.Spec.Affinity), "not pinned yet"
	})
	w.create(job)
	assertPlacement(t, job, pinnedTo(target), nil)
}

func TestJobsWithoutTheBackupLabelAreNotTouched(t *testing.T) {
	w := newWorld(t)
	// Even a PVC that would be denied: the webhook's objectSelector never sends the Job.
	w.claim("nowhere", claimSetup{volumeState: "attaching"})
	w.createJob(w.backupJobYAML("plain", false, "", "nowhere"), cluster.KubectlResult{Stdout: "job.batch/plain created\n"})
	assertPlacement(t, w.job("plain"), nil, nil)
}

func TestReadWriteManyVolumesDoNotPinTheJob(t *testing.T) {
	w := newWorld(t)
	w.claim("shared", claimSetup{modes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}, podNode: w.node("x")})
	w.createJob(w.backupJobYAML("shared", true, "", "shared"), cluster.KubectlResult{Stdout: "job.batch/shared created\n"})
	assertPlacement(t, w.job("shared"), nil, nil)
}

func ptrTo[T any](value T) *T { return &value }
