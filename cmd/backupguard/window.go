package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/backupguard/backupguard/controllers"
	"github.com/backupguard/backupguard/policies"
)

const windowUsage = `Usage:
  backupguard window open --for DURATION [--reason TEXT]   open the S3 window now, for a while
  backupguard window close [--for DURATION]                end a manual opening; with --for, keep it closed
  backupguard window release [--reason TEXT]               remove the fences and keep them down, e.g. before
                                                           uninstalling backupguard, until resume
  backupguard window resume                                end any override or release: follow the schedule
  backupguard window status                                the window as the cluster's leader sees it
  backupguard window status --config FILE [--at TIME]      the window computed from a config, offline

The override lives in the ConfigMap backupguard-window in backupguard's namespace, so every replica and
a new leader see it; open and close expire by themselves, release lasts until resume.

Flags:
`

// cliFieldOwner owns the override in the window ConfigMap; the controller owns its annotations.
const cliFieldOwner = "backupguard-cli"

func runWindow(args []string, stdout, stderr io.Writer) int {
	flags := pflag.NewFlagSet("window", pflag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.Usage = func() {
		fmt.Fprint(stderr, windowUsage)
		flags.PrintDefaults()
	}
	duration := flags.Duration("for", 0, "how long the override lasts, e.g. 2h")
	reason := flags.String("reason", "", "why, shown in status and Events")
	kubeconfig := flags.String("kubeconfig", "", "kubeconfig file; default: $KUBECONFIG, then in-cluster")
	namespace := flags.String("namespace", defaultNamespace(), "backupguard's namespace")
	longhornNamespace := flags.String("longhorn-namespace", policies.DefaultLonghornNamespace, "release only: where the window's NetworkPolicies are")
	configPath := flags.String("config", "", "status only: compute the window from this config file instead of asking the cluster")
	at := flags.String("at", "", "status --config only: the instant to compute the window at (RFC 3339); default now")
	if err := flags.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return exitOK
		}
		return exitUsage
	}
	usageError := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "backupguard window: "+format+"\n", a...)
		return exitUsage
	}
	if flags.NArg() != 1 {
		return usageError("name one action: open, close, release, resume or status")
	}
	action := flags.Arg(0)
	now := time.Now().UTC()
	switch action {
	case "status":
		if *configPath != "" {
			return windowStatusOffline(*configPath, *at, now, stdout, stderr)
		}
		if *at != "" {
			return usageError("--at needs --config: the cluster only knows the window now")
		}
	case "open":
		if *duration <= 0 {
			return usageError("open needs --for, e.g. --for 2h")
		}
	case "close":
		if *duration < 0 {
			return usageError("--for must not be negative")
		}
	case "release", "resume":
		if *duration != 0 {
			return usageError("%s takes no --for: it lasts until the next resume, open or close", action)
		}
	default:
		return usageError("unknown action %q: use open, close, release, resume or status", action)
	}
	kube, err := cliClient(*kubeconfig)
	if err != nil {
		fmt.Fprintf(stderr, "backupguard window: %v\n", err)
		return exitFailure
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	switch action {
	case "open":
		until := now.Add(*duration)
		err = setOverride(ctx, kube, *namespace, &policies.Override{Open: true, Until: until, Reason: *reason})
		if err == nil {
			fmt.Fprintf(stdout, "window opened by hand until %s\n", until.Format("2006-01-02 15:04 UTC"))
		}
	case "close":
		if *duration > 0 {
			until := now.Add(*duration)
			err = setOverride(ctx, kube, *namespace, &policies.Override{Until: until, Reason: *reason})
			if err == nil {
				fmt.Fprintf(stdout, "window closed by hand until %s\n", until.Format("2006-01-02 15:04 UTC"))
			}
		} else {
			err = setOverride(ctx, kube, *namespace, nil)
			if err == nil {
				fmt.Fprintln(stdout, "manual override removed: the window follows its schedule")
			}
		}
	case "resume":
		err = setOverride(ctx, kube, *namespace, nil)
		if err == nil {
			fmt.Fprintln(stdout, "window resumed: it follows its schedule")
		}
	case "release":
		err = release(ctx, kube, *namespace, *longhornNamespace, *reason)
		if err == nil {
			fmt.Fprintf(stdout, "window released: no NetworkPolicy of the window remains in %s; backupguard keeps Longhorn unfenced until `backupguard window resume`\n", *longhornNamespace)
		}
	case "status":
		err = windowStatusOnline(ctx, kube, *namespace, stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "backupguard window %s: %v\n", action, err)
		return exitFailure
	}
	return exitOK
}

func cliClient(kubeconfig string) (client.Client, error) {
	config, err := restConfig(kubeconfig)
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.New(config, client.Options{Scheme: scheme})
}

// setOverride applies the override keys of the window ConfigMap as backupguard's CLI; nil releases
// them, which removes the override.
func setOverride(ctx context.Context, kube client.Client, namespace string, override *policies.Override) error {
	object := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "v1", "kind": "ConfigMap",
		"metadata": map[string]any{"name": controllers.WindowConfigMap, "namespace": namespace},
	}}
	if data := policies.OverrideData(override); data != nil {
		values := map[string]any{}
		for key, value := range data {
			values[key] = value
		}
		object.Object["data"] = values
	}
	return kube.Apply(ctx, client.ApplyConfigurationFromUnstructured(object), client.FieldOwner(cliFieldOwner), client.ForceOwnership)
}

// release records the release first, so that a running controller does not put the fences back, then
// removes the window's NetworkPolicies itself, so that Longhorn is unfenced whether or not backupguard
// still runs (a running controller may remove some first), and checks that none remains.
func release(ctx context.Context, kube client.Client, namespace, longhornNamespace, reason string) error {
	if err := setOverride(ctx, kube, namespace, &policies.Override{Released: true, Reason: reason}); err != nil {
		return err
	}
	list := func() ([]networkingv1.NetworkPolicy, error) {
		existing := &networkingv1.NetworkPolicyList{}
		if err := kube.List(ctx, existing, client.InNamespace(longhornNamespace), client.MatchingLabels{policies.ManagedByLabel: policies.ManagedByValue}); err != nil {
			return nil, fmt.Errorf("listing the window's NetworkPolicies: %w", err)
		}
		return existing.Items, nil
	}
	existing, err := list()
	if err != nil {
		return err
	}
	for i := range existing {
		if err := kube.Delete(ctx, &existing[i]); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting NetworkPolicy %s/%s: %w", longhornNamespace, existing[i].Name, err)
		}
	}
	if remaining, err := list(); err != nil || len(remaining) > 0 {
		if err == nil {
			err = fmt.Errorf("%d of the window's NetworkPolicies came back in %s: is an older backupguard, which does not know releases, running?", len(remaining), longhornNamespace)
		}
		return err
	}
	return nil
}

func windowStatusOnline(ctx context.Context, kube client.Client, namespace string, stdout io.Writer) error {
	state := &corev1.ConfigMap{}
	if err := kube.Get(ctx, client.ObjectKey{Namespace: namespace, Name: controllers.WindowConfigMap}, state); err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("no window state in %s/%s: is backupguard running with a window configured?", namespace, controllers.WindowConfigMap)
		}
		return err
	}
	fmt.Fprintf(stdout, "state:           %s\n", state.Annotations[controllers.StateAnnotation])
	fmt.Fprintf(stdout, "reason:          %s\n", state.Annotations[controllers.ReasonAnnotation])
	fmt.Fprintf(stdout, "next transition: %s\n", orNone(state.Annotations[controllers.NextTransitionAnnoation]))
	fmt.Fprintf(stdout, "last opened:     %s\n", orNone(state.Annotations[controllers.OpenedAtAnnotation]))
	override, err := policies.ParseOverride(state.Data)
	switch {
	case err != nil:
		fmt.Fprintf(stdout, "override:        unreadable (%v)\n", err)
	case override == nil:
		fmt.Fprintln(stdout, "override:        none")
	case override.Released:
		fmt.Fprintf(stdout, "override:        released%s\n", reasonText(override.Reason))
	default:
		fmt.Fprintf(stdout, "override:        %s until %s%s\n", overrideMode(override), override.Until.UTC().Format(time.RFC3339), reasonText(override.Reason))
	}
	return nil
}

func windowStatusOffline(configPath, at string, now time.Time, stdout, stderr io.Writer) int {
	if at != "" {
		parsed, err := time.Parse(time.RFC3339, at)
		if err != nil {
			fmt.Fprintf(stderr, "backupguard window: --at %q: not an RFC 3339 time such as 2026-11-21T12:00:00Z\n", at)
			return exitUsage
		}
		now = parsed.UTC()
	}
	config, err := loadConfig(configPath)
	if err != nil {
		fmt.Fprintf(stderr, "backupguard window: %v\n", err)
		return exitUsage
	}
	window := config.CompiledWindow()
	if window == nil {
		fmt.Fprintf(stderr, "backupguard window: %s configures no window\n", configPath)
		return exitUsage
	}
	status := window.StateAt(now, policies.WindowFacts{})
	fmt.Fprintf(stdout, "at:              %s\n", now.Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(stdout, "state:           %s\n", status.State)
	fmt.Fprintf(stdout, "reason:          %s\n", status.Reason)
	fmt.Fprintf(stdout, "next transition: %s\n", status.NextTransition.UTC().Format("2006-01-02 15:04 UTC"))
	var openings []string
	for _, opening := range window.NextOpenings(now, 3) {
		openings = append(openings, fmt.Sprintf("%s to %s", opening.Opens.Format("2006-01-02 15:04"), opening.Closes.Format("15:04 UTC")))
	}
	fmt.Fprintf(stdout, "next windows:    %s\n", strings.Join(openings, ", "))
	return exitOK
}

func orNone(text string) string {
	if text == "" {
		return "none"
	}
	return text
}

func overrideMode(override *policies.Override) string {
	if override.Open {
		return "open"
	}
	return "closed"
}

func reasonText(reason string) string {
	if reason == "" {
		return ""
	}
	return " (" + reason + ")"
}
