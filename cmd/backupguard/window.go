package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/backupguard/backupguard/controllers"
	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/policies"
)

// cliFieldOwner owns the override in the window ConfigMap; the controller owns its annotations.
const cliFieldOwner = "backupguard-cli"

// windowOptions are the flags every window command shares: which cluster, and backupguard's namespace
// there.
type windowOptions struct {
	cluster   clusterFlags
	namespace string
}

func newWindowCommand() *cobra.Command {
	var opts windowOptions
	command := &cobra.Command{
		Use:   "window open|close|release|resume|status|verify [flags]",
		Short: "The S3 window: manual override, release, state and self-test",
		Long: `The S3 window: open or close it by hand for a while, release it (remove the fences and keep them
down, e.g. before uninstalling backupguard) until resume, see its state, or check that its fence works
on this cluster's CNI (verify).

The override lives in the ConfigMap backupguard-window in backupguard's namespace, so every replica and
a new leader see it; open and close expire by themselves, release lasts until resume.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usageError("name one action: open, close, release, resume, status or verify")
			}
			return usageError("unknown action %q: use open, close, release, resume, status or verify", args[0])
		},
	}
	flags := command.PersistentFlags()
	opts.cluster.addFlags(flags)
	flags.StringVarP(&opts.namespace, "namespace", "n", defaultNamespace(), "backupguard's namespace; $POD_NAMESPACE sets the default")
	command.AddCommand(newWindowOpenCommand(&opts), newWindowCloseCommand(&opts), newWindowReleaseCommand(&opts),
		newWindowResumeCommand(&opts), newWindowStatusCommand(&opts), newWindowVerifyCommand(&opts))
	return command
}

func newWindowOpenCommand(opts *windowOptions) *cobra.Command {
	var duration time.Duration
	var reason string
	command := &cobra.Command{
		Use:   "open --for DURATION [--reason TEXT] [flags]",
		Short: "Open the S3 window now, for a while",
		Args:  noArgs,
		RunE: func(command *cobra.Command, _ []string) error {
			if duration <= 0 {
				return usageError("open needs --for, e.g. --for 2h")
			}
			until := time.Now().UTC().Add(duration)
			err := withClient(opts, func(ctx context.Context, kube client.Client) error {
				return setOverride(ctx, kube, opts.namespace, &policies.Override{Open: true, Until: until, Reason: reason})
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(command.OutOrStdout(), "window opened by hand until %s\n", until.Format("2006-01-02 15:04 UTC"))
			return nil
		},
	}
	command.Flags().DurationVar(&duration, "for", 0, "how long the window stays open, e.g. 2h (required)")
	command.Flags().StringVar(&reason, "reason", "", "why, shown in status and Events")
	return command
}

func newWindowCloseCommand(opts *windowOptions) *cobra.Command {
	var duration time.Duration
	var reason string
	command := &cobra.Command{
		Use:   "close [--for DURATION] [--reason TEXT] [flags]",
		Short: "End a manual opening; with --for, keep the window closed for a while",
		Args:  noArgs,
		RunE: func(command *cobra.Command, _ []string) error {
			if duration < 0 {
				return usageError("--for must not be negative")
			}
			until := time.Now().UTC().Add(duration)
			var override *policies.Override
			if duration > 0 {
				override = &policies.Override{Until: until, Reason: reason}
			}
			if err := withClient(opts, func(ctx context.Context, kube client.Client) error {
				return setOverride(ctx, kube, opts.namespace, override)
			}); err != nil {
				return err
			}
			if duration > 0 {
				fmt.Fprintf(command.OutOrStdout(), "window closed by hand until %s\n", until.Format("2006-01-02 15:04 UTC"))
			} else {
				fmt.Fprintln(command.OutOrStdout(), "manual override removed: the window follows its schedule")
			}
			return nil
		},
	}
	command.Flags().DurationVar(&duration, "for", 0, "keep the window closed this long, e.g. 12h")
	command.Flags().StringVar(&reason, "reason", "", "why, shown in status and Events")
	return command
}

func newWindowReleaseCommand(opts *windowOptions) *cobra.Command {
	var reason, longhornNamespace string
	command := &cobra.Command{
		Use:   "release [--reason TEXT] [flags]",
		Short: "Remove the window's fences and keep them down until resume (e.g. before uninstalling)",
		Long: `Records the release in the window ConfigMap, so that a running controller does not put the fences
back, then deletes the window's NetworkPolicies itself, so that Longhorn is unfenced whether or not
backupguard still runs, and checks that none remains. It lasts until "window resume", "open" or "close".`,
		Args: noArgs,
		RunE: func(command *cobra.Command, _ []string) error {
			if err := withClient(opts, func(ctx context.Context, kube client.Client) error {
				return release(ctx, kube, opts.namespace, longhornNamespace, reason)
			}); err != nil {
				return err
			}
			fmt.Fprintf(command.OutOrStdout(), "window released: no NetworkPolicy of the window remains in %s; backupguard keeps Longhorn unfenced until `backupguard window resume`\n", longhornNamespace)
			return nil
		},
	}
	command.Flags().StringVar(&reason, "reason", "", "why, shown in status and Events")
	command.Flags().StringVar(&longhornNamespace, "longhorn-namespace", policies.DefaultLonghornNamespace, "where the window's NetworkPolicies are")
	return command
}

func newWindowResumeCommand(opts *windowOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "resume [flags]",
		Short: "End any override or release: the window follows its schedule",
		Args:  noArgs,
		RunE: func(command *cobra.Command, _ []string) error {
			if err := withClient(opts, func(ctx context.Context, kube client.Client) error {
				return setOverride(ctx, kube, opts.namespace, nil)
			}); err != nil {
				return err
			}
			fmt.Fprintln(command.OutOrStdout(), "window resumed: it follows its schedule")
			return nil
		},
	}
}

// windowStatusOutputs are the -o values of window status.
var windowStatusOutputs = []string{"text", "json", "yaml"}

func newWindowStatusCommand(opts *windowOptions) *cobra.Command {
	var configPath, at, output string
	command := &cobra.Command{
		Use:   "status [--config FILE [--at TIME]] [-o text|json|yaml] [flags]",
		Short: "The window as the cluster's leader sees it, or as a config file computes it",
		Long: `Shows the window's state: as the cluster's leader sees it (in the window ConfigMap), or with --config
as the config file computes it at --at (default now), without a cluster.`,
		Example: `  backupguard window status -n backupguard-system
  backupguard window status --config manifests/examples/backupguard-config.yaml --at 2026-11-21T12:00:00Z -o json`,
		Args: noArgs,
		RunE: func(command *cobra.Command, _ []string) error {
			if !slices.Contains(windowStatusOutputs, output) {
				return usageError("-o %q: must be text, json or yaml", output)
			}
			var status windowStatus
			if configPath != "" {
				var err error
				if status, err = windowStatusOffline(configPath, at, time.Now().UTC()); err != nil {
					return err
				}
			} else {
				if at != "" {
					return usageError("--at needs --config: the cluster only knows the window now")
				}
				err := withClient(opts, func(ctx context.Context, kube client.Client) error {
					var err error
					status, err = windowStatusOnline(ctx, kube, opts.namespace)
					return err
				})
				if err != nil {
					return err
				}
			}
			return status.write(command.OutOrStdout(), output)
		},
	}
	command.Flags().StringVar(&configPath, "config", "", "compute the window from this config file instead of asking the cluster")
	command.Flags().StringVar(&at, "at", "", "with --config: the instant to compute the window at (RFC 3339); default now")
	command.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json or yaml")
	_ = command.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(windowStatusOutputs, cobra.ShellCompDirectiveNoFileComp))
	return command
}

// withClient runs do with a client of the cluster the flags choose, within a time limit; its errors
// are failures (status 1).
func withClient(opts *windowOptions, do func(context.Context, client.Client) error) error {
	kube, err := cliClient(opts.cluster)
	if err != nil {
		return failure(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := do(ctx, kube); err != nil {
		return failure(err)
	}
	return nil
}

func cliClient(cluster clusterFlags) (client.Client, error) {
	config, err := cluster.restConfig()
	if err != nil {
		return nil, err
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := longhorn.AddToScheme(scheme); err != nil {
		return nil, err
	}
	return client.New(config, client.Options{Scheme: scheme})
}

// setOverride applies the override keys of the window ConfigMap as backupguard's CLI; nil gives up
// the CLI's keys, which removes the override.
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
	return releaseCiliumNetworkPolicies(ctx, kube, longhornNamespace)
}

// releaseCiliumNetworkPolicies deletes the window's CiliumNetworkPolicies too: alone they only allow,
// but Cilium 1.15 (whose CRD has no enableDefaultDeny) makes them default-deny. Without Cilium's CRD
// there is nothing to delete.
func releaseCiliumNetworkPolicies(ctx context.Context, kube client.Client, longhornNamespace string) error {
	existing := &unstructured.UnstructuredList{}
	existing.SetGroupVersionKind(policies.CiliumNetworkPolicyGVK.GroupVersion().WithKind(policies.CiliumNetworkPolicyGVK.Kind + "List"))
	err := kube.List(ctx, existing, client.InNamespace(longhornNamespace), client.MatchingLabels{policies.ManagedByLabel: policies.ManagedByValue})
	if meta.IsNoMatchError(err) || apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing the window's CiliumNetworkPolicies: %w", err)
	}
	for i := range existing.Items {
		if err := kube.Delete(ctx, &existing.Items[i]); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("deleting CiliumNetworkPolicy %s/%s: %w", longhornNamespace, existing.Items[i].GetName(), err)
		}
	}
	return nil
}

// windowStatus is what window status shows; -o json and -o yaml print it as it is.
type windowStatus struct {
	// At is the instant a config computed the window at; empty for the cluster's view.
	At             string `json:"at,omitempty"`
	State          string `json:"state"`
	Reason         string `json:"reason"`
	NextTransition string `json:"nextTransition"`
	// LastOpened is when the cluster's window last opened; empty when unknown.
	LastOpened string `json:"lastOpened,omitempty"`
	// Override is the cluster's manual override, when there is one.
	Override *overrideStatus `json:"override,omitempty"`
	// NextWindows are the next openings a config computes.
	NextWindows []windowOpening `json:"nextWindows,omitempty"`
	// online says the status came from the cluster, where the text shows the override.
	online bool
}

type overrideStatus struct {
	// Mode is open, closed or released; empty when the override cannot be read (Error says why).
	Mode   string `json:"mode,omitempty"`
	Until  string `json:"until,omitempty"`
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
}

type windowOpening struct {
	Opens  string `json:"opens"`
	Closes string `json:"closes"`
}

func windowStatusOnline(ctx context.Context, kube client.Client, namespace string) (windowStatus, error) {
	state := &corev1.ConfigMap{}
	if err := kube.Get(ctx, client.ObjectKey{Namespace: namespace, Name: controllers.WindowConfigMap}, state); err != nil {
		if apierrors.IsNotFound(err) {
			return windowStatus{}, fmt.Errorf("no window state in %s/%s: is backupguard running with a window configured?", namespace, controllers.WindowConfigMap)
		}
		return windowStatus{}, err
	}
	status := windowStatus{
		State:          state.Annotations[controllers.StateAnnotation],
		Reason:         state.Annotations[controllers.ReasonAnnotation],
		NextTransition: state.Annotations[controllers.NextTransitionAnnoation],
		LastOpened:     state.Annotations[controllers.OpenedAtAnnotation],
		online:         true,
	}
	override, err := policies.ParseOverride(state.Data)
	switch {
	case err != nil:
		status.Override = &overrideStatus{Error: err.Error()}
	case override != nil && override.Released:
		status.Override = &overrideStatus{Mode: "released", Reason: override.Reason}
	case override != nil:
		status.Override = &overrideStatus{Mode: overrideMode(override), Until: override.Until.UTC().Format(time.RFC3339), Reason: override.Reason}
	}
	return status, nil
}

func windowStatusOffline(configPath, at string, now time.Time) (windowStatus, error) {
	if at != "" {
		parsed, err := time.Parse(time.RFC3339, at)
		if err != nil {
			return windowStatus{}, usageError("--at %q: not an RFC 3339 time such as 2026-11-21T12:00:00Z", at)
		}
		now = parsed.UTC()
	}
	config, err := loadConfig(configPath)
	if err != nil {
		return windowStatus{}, inputError(err)
	}
	window := config.CompiledWindow()
	if window == nil {
		return windowStatus{}, inputError(fmt.Errorf("%s configures no window", configPath))
	}
	state := window.StateAt(now, policies.WindowFacts{})
	status := windowStatus{
		At:             now.Format(time.RFC3339),
		State:          string(state.State),
		Reason:         state.Reason,
		NextTransition: state.NextTransition.UTC().Format(time.RFC3339),
	}
	for _, opening := range window.NextOpenings(now, 3) {
		status.NextWindows = append(status.NextWindows, windowOpening{Opens: opening.Opens.UTC().Format(time.RFC3339), Closes: opening.Closes.UTC().Format(time.RFC3339)})
	}
	return status, nil
}

// write prints the status as text for people, or as JSON or YAML.
func (s windowStatus) write(w io.Writer, output string) error {
	switch output {
	case "json":
		encoder := json.NewEncoder(w)
		encoder.SetIndent("", "  ")
		return encoder.Encode(s)
	case "yaml":
		data, err := yaml.Marshal(s)
		if err != nil {
			return err
		}
		_, err = w.Write(data)
		return err
	}
	if s.online {
		fmt.Fprintf(w, "state:           %s\n", s.State)
		fmt.Fprintf(w, "reason:          %s\n", s.Reason)
		fmt.Fprintf(w, "next transition: %s\n", orNone(s.NextTransition))
		fmt.Fprintf(w, "last opened:     %s\n", orNone(s.LastOpened))
		switch override := s.Override; {
		case override == nil:
			fmt.Fprintln(w, "override:        none")
		case override.Error != "":
			fmt.Fprintf(w, "override:        unreadable (%s)\n", override.Error)
		case override.Mode == "released":
			fmt.Fprintf(w, "override:        released%s\n", reasonText(override.Reason))
		default:
			fmt.Fprintf(w, "override:        %s until %s%s\n", override.Mode, override.Until, reasonText(override.Reason))
		}
		return nil
	}
	fmt.Fprintf(w, "at:              %s\n", humanTime(s.At))
	fmt.Fprintf(w, "state:           %s\n", s.State)
	fmt.Fprintf(w, "reason:          %s\n", s.Reason)
	fmt.Fprintf(w, "next transition: %s\n", humanTime(s.NextTransition))
	var openings []string
	for _, opening := range s.NextWindows {
		opens, _ := time.Parse(time.RFC3339, opening.Opens)
		closes, _ := time.Parse(time.RFC3339, opening.Closes)
		openings = append(openings, fmt.Sprintf("%s to %s", opens.Format("2006-01-02 15:04"), closes.Format("15:04 UTC")))
	}
	_, err := fmt.Fprintf(w, "next windows:    %s\n", strings.Join(openings, ", "))
	return err
}

// humanTime shows an RFC 3339 instant as the text report does: 2026-11-22 00:55 UTC.
func humanTime(instant string) string {
	parsed, err := time.Parse(time.RFC3339, instant)
	if err != nil {
		return instant
	}
	return parsed.UTC().Format("2006-01-02 15:04 UTC")
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
