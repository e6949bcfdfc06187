package chart

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/test/cluster"
)

const releaseNamespace = "backupguard-system"

// caBundles reads every webhook's caBundle from the API server, by webhook name.
func caBundles(t *testing.T, ctx context.Context, kube client.Client) map[string]string {
	t.Helper()
	bundles := map[string]string{}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	if err := kube.Get(ctx, client.ObjectKey{Name: "backupguard"}, validating); err != nil {
		t.Fatal(err)
	}
	for _, webhook := range validating.Webhooks {
		bundles[webhook.Name] = string(webhook.ClientConfig.CABundle)
	}
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := kube.Get(ctx, client.ObjectKey{Name: "backupguard"}, mutating); err != nil {
		t.Fatal(err)
	}
	for _, webhook := range mutating.Webhooks {
		bundles[webhook.Name] = string(webhook.ClientConfig.CABundle)
	}
	return bundles
}

// TestInstallUpgradeUninstall runs the real helm against the real kube-apiserver. No kubelet runs, so no
// pod starts: the test asserts the objects as the API server stored them, and plays the Job controller
// for the pre-delete hook.
func TestInstallUpgradeUninstall(t *testing.T) {
	helm := helm(t)
	c, err := cluster.StartWith(cluster.Options{NoWebhooks: true, NoAudit: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop() })
	ctx := t.Context()
	kube, err := client.New(c.Config, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	if err := kube.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "longhorn-system"}}); err != nil {
		t.Fatal(err)
	}
	common := []string{"--kubeconfig", c.Kubeconfig, "--namespace", releaseNamespace, "--set", "certificate.provider=helm"}

	run(t, helm, append([]string{"install", "backupguard", chartDir, "--create-namespace"}, common...)...)
	deployment := &appsv1.Deployment{}
	if err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "backupguard"}, deployment); err != nil {
		t.Fatal(err)
	}
	if *deployment.Spec.Replicas != 2 {
		t.Errorf("installed with %d replicas, want 2", *deployment.Spec.Replicas)
	}
	secret := &corev1.Secret{}
	if err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "backupguard-webhook-tls"}, secret); err != nil {
		t.Fatal(err)
	}
	installedCert := secret.Data
	ca := string(secret.Data["ca.crt"])
	want := map[string]string{"recurringjobs.backupguard.io": ca, "pvcs.backupguard.io": ca, "volumes.backupguard.io": ca, "jobs.backupguard.io": ca}
	if diff := cmp.Diff(want, caBundles(t, ctx, kube)); diff != "" {
		t.Errorf("caBundles after install (-the Secret's CA +stored):\n%s", diff)
	}
	// The RBAC as stored is the RBAC rendered (test TestTemplateMatchesKustomize: manifests/install's).
	rendered := objects(t, run(t, helm, "get", "manifest", "backupguard", "--kubeconfig", c.Kubeconfig, "--namespace", releaseNamespace))
	clusterRole := &rbacv1.ClusterRole{}
	if err := kube.Get(ctx, client.ObjectKey{Name: "backupguard"}, clusterRole); err != nil {
		t.Fatal(err)
	}
	renderedRules := rendered["ClusterRole /backupguard"].Object["rules"].([]any)
	if len(clusterRole.Rules) != len(renderedRules) || len(renderedRules) == 0 {
		t.Errorf("ClusterRole backupguard: %d rules stored, %d rendered", len(clusterRole.Rules), len(renderedRules))
	}

	run(t, helm, append([]string{"upgrade", "backupguard", chartDir, "--set", "replicas=3"}, common...)...)
	if err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "backupguard"}, deployment); err != nil {
		t.Fatal(err)
	}
	if *deployment.Spec.Replicas != 3 {
		t.Errorf("upgraded to %d replicas, want 3", *deployment.Spec.Replicas)
	}
	if err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "backupguard-webhook-tls"}, secret); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(installedCert, secret.Data); diff != "" {
		t.Errorf("the upgrade replaced the certificate (-installed +upgraded):\n%s", diff)
	}
	if diff := cmp.Diff(want, caBundles(t, ctx, kube)); diff != "" {
		t.Errorf("caBundles after the upgrade (-installed CA +stored):\n%s", diff)
	}

	// The window closed: its NetworkPolicy fences Longhorn off from the object store.
	fence := &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "longhorn-system", Name: "backupguard-egress-longhorn-manager",
			Labels: map[string]string{"app.kubernetes.io/managed-by": "backupguard"}},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "longhorn-manager"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
		},
	}
	if err := kube.Create(ctx, fence); err != nil {
		t.Fatal(err)
	}

	uninstalled := make(chan error, 1)
	go func() {
		_, err := runErr(helm, "uninstall", "backupguard", "--kubeconfig", c.Kubeconfig, "--namespace", releaseNamespace, "--timeout", "2m")
		uninstalled <- err
	}()
	job := &batchv1.Job{}
	if err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "backupguard-release-window"}, job)
		return err == nil, client.IgnoreNotFound(err)
	}); err != nil {
		t.Fatalf("no pre-delete Job backupguard-release-window: %v", err)
	}
	// Nothing of the release is deleted before the hook completes: the ServiceAccount it runs as exists.
	if err := kube.Get(ctx, client.ObjectKey{Namespace: releaseNamespace, Name: "backupguard"}, &corev1.ServiceAccount{}); err != nil {
		t.Errorf("the hook's ServiceAccount while the hook runs: %v", err)
	}
	podSpec := job.Spec.Template.Spec
	if podSpec.ServiceAccountName != "backupguard" {
		t.Errorf("the hook runs as %q, want backupguard", podSpec.ServiceAccountName)
	}
	args := podSpec.Containers[0].Args
	wantArgs := []string{"window", "release", "--reason=helm uninstall backupguard", "--namespace=" + releaseNamespace, "--longhorn-namespace=longhorn-system"}
	if diff := cmp.Diff(wantArgs, args); diff != "" {
		t.Errorf("the hook's args (-want +got):\n%s", diff)
	}
	runReleaseAsServiceAccount(t, c, args)

	// Play the Job controller: the hook succeeded.
	now := metav1.Now()
	job.Status = batchv1.JobStatus{
		StartTime: &now, CompletionTime: &now, Succeeded: 1,
		Conditions: []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
	}
	if err := kube.Status().Update(ctx, job); err != nil {
		t.Fatalf("marking the hook Job complete: %v", err)
	}
	select {
	case err := <-uninstalled:
		if err != nil {
			t.Fatalf("helm uninstall: %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("helm uninstall did not finish within 2 minutes of the hook completing")
	}

	for _, object := range []client.Object{
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: "backupguard"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: "backupguard-webhook-tls"}},
		&admissionregistrationv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "backupguard"}},
		&admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: "backupguard"}},
		&rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "backupguard"}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "longhorn-system", Name: "backupguard"}},
		&rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "backupguard-apiserver-endpoints"}},
		&batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: releaseNamespace, Name: "backupguard-release-window"}},
	} {
		err := kube.Get(ctx, client.ObjectKeyFromObject(object), object)
		if !apierrors.IsNotFound(err) {
			t.Errorf("%T %s after uninstall: want NotFound, got %v", object, client.ObjectKeyFromObject(object), err)
		}
	}
}

// runReleaseAsServiceAccount plays the kubelet: it runs the hook's command with the backupguard binary,
// as the ServiceAccount the Job runs as, and checks that no window NetworkPolicy remains. The command is
// `backupguard window release` (issue 14); on a tree whose binary does not have it yet, only the Job's
// arguments are checked (above), and the test says so.
func runReleaseAsServiceAccount(t *testing.T, c *cluster.Cluster, args []string) {
	t.Helper()
	binary, err := cluster.BuildBackupguard(c.Dir)
	if err != nil {
		t.Fatal(err)
	}
	usage, _ := exec.Command(binary, "window", "--help").CombinedOutput()
	if !strings.Contains(string(usage), "window release") {
		t.Logf("this backupguard has no `window release` yet: the hook's command is not run")
		return
	}
	kubeconfig, err := c.ImpersonatingKubeconfig(cluster.ServiceAccountUser, cluster.ServiceAccountGroups)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(binary, append(args, "--kubeconfig="+kubeconfig)...).CombinedOutput(); err != nil {
		t.Fatalf("backupguard %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	kube, err := client.New(c.Config, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	fences := &networkingv1.NetworkPolicyList{}
	if err := kube.List(t.Context(), fences, client.InNamespace("longhorn-system"), client.MatchingLabels{"app.kubernetes.io/managed-by": "backupguard"}); err != nil {
		t.Fatal(err)
	}
	if len(fences.Items) != 0 {
		t.Errorf("%d window NetworkPolicies remain after the hook ran", len(fences.Items))
	}
}
