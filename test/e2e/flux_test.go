package e2e

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/util/retry"

	"github.com/backupguard/backupguard/test/cluster"
)

var (
	gitRepositoryResource = schema.GroupVersionResource{Group: "source.toolkit.fluxcd.io", Version: "v1", Resource: "gitrepositories"}
	kustomizationResource = schema.GroupVersionResource{Group: "kustomize.toolkit.fluxcd.io", Version: "v1", Resource: "kustomizations"}
)

// gitServer plays source-controller: it serves the current revision's tarball over loopback and
// writes the GitRepository's status.artifact, which is all kustomize-controller reads.
type gitServer struct {
	t        *testing.T
	server   *httptest.Server
	mu       sync.Mutex
	tarball  []byte
	revision int
	repos    dynamic.ResourceInterface
}

func (g *gitServer) publish(files map[string]string) string {
	g.t.Helper()
	var buffer bytes.Buffer
	zipped := gzip.NewWriter(&buffer)
	archive := tar.NewWriter(zipped)
	for name, content := range files {
		if err := archive.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), Typeflag: tar.TypeReg}); err != nil {
			g.t.Fatal(err)
		}
		if _, err := archive.Write([]byte(content)); err != nil {
			g.t.Fatal(err)
		}
	}
	if err := archive.Close(); err != nil {
		g.t.Fatal(err)
	}
	if err := zipped.Close(); err != nil {
		g.t.Fatal(err)
	}
	g.mu.Lock()
	g.tarball = buffer.Bytes()
	g.revision++
	g.mu.Unlock()
	commit := sha1.Sum([]byte(fmt.Sprint(g.revision)))
	digest := sha256.Sum256(buffer.Bytes())
	revision := "main@sha1:" + hex.EncodeToString(commit[:])
	path := "gitrepository/flux-system/tree/" + hex.EncodeToString(commit[:]) + ".tar.gz"
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		repo, err := g.repos.Get(context.Background(), "tree", metav1.GetOptions{})
		if err != nil {
			return err
		}
		repo.Object["status"] = map[string]any{"artifact": map[string]any{
			"url": g.server.URL + "/" + path, "path": path, "revision": revision,
			"digest": "sha256:" + hex.EncodeToString(digest[:]), "lastUpdateTime": time.Now().UTC().Format(time.RFC3339),
		}}
		_, err = g.repos.UpdateStatus(context.Background(), repo, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		g.t.Fatal(err)
	}
	return revision
}

func startKustomizeController(t *testing.T, dir string) {
	t.Helper()
	if result := testCluster.RunKubectl("", "apply", "--server-side", "-f", filepath.Join(dir, "crds")); result.ExitCode != 0 {
		t.Fatalf("installing the Flux CRDs: %s", result.Stderr)
	}
	if result := testCluster.RunKubectl("", "wait", "--for=condition=Established", "--timeout=60s", "-f", filepath.Join(dir, "crds")); result.ExitCode != 0 {
		t.Fatalf("waiting for the Flux CRDs: %s", result.Stderr)
	}
	logFile, err := os.Create(filepath.Join(testCluster.Dir, "kustomize-controller.log"))
	if err != nil {
		t.Fatal(err)
	}
	command := exec.Command(filepath.Join(dir, "kustomize-controller"), "--metrics-addr=0", "--health-addr="+freePort(t),
		"--enable-leader-election=false", "--no-remote-bases=true", "--events-addr=", "--requeue-dependency=1s", "--http-retry=1",
		"--log-encoding=json")
	tmp := t.TempDir()
	command.Env = append(os.Environ(), "KUBECONFIG="+testCluster.Kubeconfig, "TMPDIR="+tmp)
	command.Stdout, command.Stderr = logFile, logFile
	if err := command.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = command.Process.Signal(os.Interrupt)
		_ = command.Wait()
		logFile.Close()
	})
}

func kustomizationReady(object *unstructured.Unstructured) (status, reason, message string) {
	conditions, _, _ := unstructured.NestedSlice(object.Object, "status", "conditions")
	for _, condition := range conditions {
		fields, _ := condition.(map[string]any)
		if fields["type"] == "Ready" {
			status, _ = fields["status"].(string)
			reason, _ = fields["reason"].(string)
			message, _ = fields["message"].(string)
		}
	}
	return status, reason, message
}

// TestFluxAppliesThroughBackupguard lets the real kustomize-controller reconcile a Git tree through
// the webhooks: the good tree applies and its PVC is labelled; further reconciles change nothing; a
// revision with two typical mistakes goes Ready=False with backupguard's messages and applies nothing;
// the fixed revision is Ready again.
func TestFluxAppliesThroughBackupguard(t *testing.T) {
	ctx := context.Background()
	command := exec.Command("bash", filepath.Join(cluster.RepoRoot(), "test", "tools", "ensure-flux.sh"))
	command.Stderr = os.Stderr
	out, err := command.Output()
	if err != nil {
		t.Fatalf("building kustomize-controller: %v", err)
	}
	startKustomizeController(t, strings.TrimSpace(string(out)))
	dynamicClient, err := dynamic.NewForConfig(testCluster.Config)
	if err != nil {
		t.Fatal(err)
	}
	namespace := newNamespace(t, map[string]string{"backup": "daily"})
	if _, err := dynamicClient.Resource(schema.GroupVersionResource{Version: "v1", Resource: "namespaces"}).Get(ctx, "flux-system", metav1.GetOptions{}); err != nil {
		assertKubectl(t, testCluster.RunKubectl("", "create", "namespace", "flux-system"), cluster.KubectlResult{Stdout: "namespace/flux-system created\n"})
	}
	git := &gitServer{t: t, repos: dynamicClient.Resource(gitRepositoryResource).Namespace("flux-system")}
	git.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		git.mu.Lock()
		defer git.mu.Unlock()
		_, _ = w.Write(git.tarball)
	}))
	defer git.server.Close()
	repo := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
		"metadata": map[string]any{"name": "tree", "namespace": "flux-system"},
		"spec":     map[string]any{"url": "https://example.invalid/tree.git", "interval": "1h", "ref": map[string]any{"branch": "main"}},
	}}
	if _, err := git.repos.Create(ctx, repo, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	good := recurringJobYAML(longhornNamespace, "flux-nightly", "  task: backup\n  cron: \"0 1 * * *\"\n  retain: 8\n  parameters:\n    full-backup-interval: \"7\"\n")
	tree := map[string]string{
		"kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [jobs.yaml, pvc.yaml]\n",
		"jobs.yaml":          good,
		"pvc.yaml":           pvcYAML(namespace, "data", "longhorn", map[string]string{"app": "web"}, nil),
	}
	first := git.publish(tree)
	kustomizations := dynamicClient.Resource(kustomizationResource).Namespace("flux-system")
	kustomization := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
		"metadata": map[string]any{"name": "tree", "namespace": "flux-system"},
		"spec": map[string]any{"interval": "1h", "path": "./", "prune": true,
			"sourceRef": map[string]any{"kind": "GitRepository", "name": "tree"}},
	}}
	if _, err := kustomizations.Create(ctx, kustomization, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor := func(what, wantStatus, wantReason, wantMessage string) {
		t.Helper()
		eventually(t, what, func() (bool, string) {
			current, err := kustomizations.Get(ctx, "tree", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			status, reason, message := kustomizationReady(current)
			want := []string{wantStatus, wantReason, wantMessage}
			got := []string{status, reason, message}
			return cmp.Equal(want, got), cmp.Diff(want, got)
		})
	}
	waitFor("the good tree to apply", "True", "ReconciliationSucceeded", "Applied revision: "+first)
	if diff := cmp.Diff(dailyLabels, withoutKeys(getPVC(t, namespace, "data").Labels, "app", "kustomize.toolkit.fluxcd.io/name", "kustomize.toolkit.fluxcd.io/namespace")); diff != "" {
		t.Errorf("PVC recurring labels after Flux applied it (-want +got):\n%s", diff)
	}

	// Further reconciles of the same revision write nothing.
	before := getPVC(t, namespace, "data").ResourceVersion
	jobBefore := testCluster.RunKubectl("", "get", "recurringjob", "-n", longhornNamespace, "flux-nightly", "-o", "jsonpath={.metadata.resourceVersion}").Stdout
	for i := range 3 {
		requested := fmt.Sprintf("again-%d", i)
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			current, err := kustomizations.Get(ctx, "tree", metav1.GetOptions{})
			if err != nil {
				return err
			}
			annotations := current.GetAnnotations()
			if annotations == nil {
				annotations = map[string]string{}
			}
			annotations["reconcile.fluxcd.io/requestedAt"] = requested
			current.SetAnnotations(annotations)
			_, err = kustomizations.Update(ctx, current, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, "reconcile "+requested, func() (bool, string) {
			current, err := kustomizations.Get(ctx, "tree", metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			handled, _, _ := unstructured.NestedString(current.Object, "status", "lastHandledReconcileAt")
			return handled == requested, handled
		})
	}
	if after := getPVC(t, namespace, "data").ResourceVersion; after != before {
		t.Errorf("reconciling an unchanged revision rewrote the PVC: resourceVersion %s then %s", before, after)
	}
	if after := testCluster.RunKubectl("", "get", "recurringjob", "-n", longhornNamespace, "flux-nightly", "-o", "jsonpath={.metadata.resourceVersion}").Stdout; after != jobBefore {
		t.Errorf("reconciling an unchanged revision rewrote the RecurringJob: resourceVersion %s then %s", jobBefore, after)
	}
	events := testCluster.RunKubectl("", "get", "events", "-n", "flux-system", "--field-selector", "involvedObject.name=tree", "-o", "jsonpath={range .items[*]}{.message}{\"\\n---\\n\"}{end}")
	if strings.Contains(events.Stdout, " configured") {
		t.Errorf("Flux reported a change on an unchanged revision:\n%s", events.Stdout)
	}

	// Each typical mistake, in a revision with a good new job beside it: Ready=False with backupguard's
	// message (Flux names the first object that fails), and nothing of the revision applied.
	newGood := recurringJobYAML(longhornNamespace, "flux-new-good", "  task: snapshot\n  cron: \"0 * * * *\"\n  retain: 3\n")
	for _, mistake := range []struct{ name, spec, message string }{
		{"flux-local-time", "  task: backup\n  cron: \"CRON_TZ=Europe/Berlin 0 3 * * *\"\n  retain: 7\n",
			`spec.cron: Invalid value: "CRON_TZ=Europe/Berlin 0 3 * * *": time zones are not supported: Longhorn runs every schedule in UTC; drop the prefix and write the time in UTC: ` +
				`"0 2 * * *" while Europe/Berlin is on CET (UTC+01:00), "0 1 * * *" while Europe/Berlin is on CEST (UTC+02:00)`},
		{"flux-retain", "  task: backup\n  cron: \"0 2 * * *\"\n  retain: 7\n  parameters:\n    full-backup-interval: \"7\"\n",
			`spec.retain: Invalid value: 7: must be greater than parameters[full-backup-interval] (7), so that the 7 backups kept always include a full backup ` +
				`(every block uploaded afresh, which also replaces a damaged block in the store); set retain to at least 8`},
	} {
		bad := map[string]string{"kustomization.yaml": tree["kustomization.yaml"], "pvc.yaml": tree["pvc.yaml"],
			"jobs.yaml": good + "---\n" + newGood + "---\n" + recurringJobYAML(longhornNamespace, mistake.name, mistake.spec)}
		git.publish(bad)
		waitFor("the revision with "+mistake.name+" to fail", "False", "ReconciliationFailed",
			fmt.Sprintf(`RecurringJob/longhorn-system/%s dry-run failed (Invalid): admission webhook "recurringjobs.backupguard.io" denied the request: RecurringJob.longhorn.io %q is invalid: %s`+"\n",
				mistake.name, mistake.name, mistake.message))
		if result := testCluster.RunKubectl("", "get", "recurringjob", "-n", longhornNamespace, "flux-new-good", "-o", "name"); result.ExitCode == 0 {
			t.Errorf("an object of the failing revision was applied: %s", result.Stdout)
		}
	}

	// The fixed revision applies again.
	fixed := map[string]string{"kustomization.yaml": tree["kustomization.yaml"], "pvc.yaml": tree["pvc.yaml"], "jobs.yaml": good + "---\n" + newGood}
	third := git.publish(fixed)
	waitFor("the fixed tree to apply", "True", "ReconciliationSucceeded", "Applied revision: "+third)
}

func withoutKeys(labels map[string]string, keys ...string) map[string]string {
	out := map[string]string{}
	for k, v := range labels {
		out[k] = v
	}
	for _, key := range keys {
		delete(out, key)
	}
	return out
}
