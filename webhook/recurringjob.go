package webhook

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/policies"
)

// RecurringJobPath is where the API server sends RecurringJob admission reviews.
const RecurringJobPath = "/validate-longhorn-io-v1beta2-recurringjob"

var recurringJobViolationsLetThrough = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "backupguard_recurringjob_violations_let_through_total",
	Help: "RecurringJob rule violations that were not refused, by reason: trusted-writer (Longhorn's own writes, such as restores) or warn-only (recurringJobs.enforcement: Warn).",
}, []string{"reason"})

func init() { metrics.Registry.MustRegister(recurringJobViolationsLetThrough) }

// RecurringJobValidator admits or denies RecurringJobs.
type RecurringJobValidator struct {
	// Reader is the manager's cached client; it reads Longhorn Settings.
	Reader client.Reader
	// Config returns the configuration in force.
	Config func() *policies.Config
	Clock  clock.PassiveClock
	// Recorder records an Event on a RecurringJob whose violations were let through; nil records none.
	Recorder events.EventRecorder
	Log      logr.Logger
}

// Handle implements admission.Handler.
func (v *RecurringJobValidator) Handle(ctx context.Context, req admission.Request) admission.Response {
	if req.Kind.Group != longhorn.RecurringJobGVK.Group || req.Kind.Kind != longhorn.RecurringJobGVK.Kind {
		return badRequest(fmt.Errorf("this endpoint validates %s, not %s", longhorn.RecurringJobGVK.GroupKind(), req.Kind))
	}
	if req.Kind.Version != longhorn.GroupVersion.Version {
		return badRequest(fmt.Errorf("this endpoint validates %s, not %s", longhorn.RecurringJobGVK, req.Kind))
	}
	if req.Operation != admissionv1.Create && req.Operation != admissionv1.Update {
		return admission.Allowed("")
	}
	job, errs, err := decodeRecurringJob(req.Object.Raw, "")
	if err != nil {
		return badRequest(fmt.Errorf("the %s request's object: %w", req.Operation, err))
	}
	if len(errs) > 0 {
		return verdict(longhorn.RecurringJobGVK.GroupKind(), job.Name, errs, nil)
	}
	write := policies.RecurringJobWrite{Operation: policies.RecurringJobOperation(req.Operation), Object: job, User: req.UserInfo.Username}
	if req.Operation == admissionv1.Update {
		old, oldErrs, err := decodeRecurringJob(req.OldObject.Raw, "old ")
		if err != nil {
			return badRequest(fmt.Errorf("the UPDATE request's old object: %w", err))
		}
		if len(oldErrs) == 0 {
			write.OldObject = old
		}
	}

	config := v.Config()
	settings, settingWarnings, err := v.settings(ctx, config.Longhorn.Namespace)
	if err != nil {
		return lookupFailed(err)
	}
	env := policies.RecurringJobEnvironment{
		// The request's namespace is the one the object will be stored in, whatever its metadata says.
		Namespace:         req.Namespace,
		LonghornNamespace: config.Longhorn.Namespace,
		Settings:          settings,
		Now:               v.Clock.Now(),
		Window:            config.CompiledWindow(),
		Rules:             config.RecurringJobRules(),
	}
	if env.Window != nil {
		if env.PollingBackupTargets, err = v.pollingBackupTargets(ctx, config.Longhorn.Namespace); err != nil {
			return lookupFailed(err)
		}
	}
	decision := policies.AdmitRecurringJob(write, env)
	if len(decision.LetThrough) > 0 {
		v.reportLetThrough(req, job, decision)
	}
	return verdict(longhorn.RecurringJobGVK.GroupKind(), job.Name, decision.Denied, append(settingWarnings, decision.Warnings...))
}

// decodeRecurringJob decodes a request's object. Fields backupguard does not know are left to the API
// server, which has checked them against the installed CRD: a newer Longhorn's fields must not be denied.
func decodeRecurringJob(raw []byte, which string) (*longhorn.RecurringJob, field.ErrorList, error) {
	if len(raw) == 0 {
		return nil, nil, fmt.Errorf("the request carries no %sobject", which)
	}
	object, err := longhorn.DecodeJSONObject(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("not a JSON object: %w", err)
	}
	job, errs := longhorn.DecodeRecurringJobWith(object, longhorn.IgnoreUnknownFields)
	return job, errs, nil
}

// reportLetThrough makes violations that were not refused visible: a metric, a log line and, unless the
// request is a dry run, an Event on the RecurringJob.
func (v *RecurringJobValidator) reportLetThrough(req admission.Request, job *longhorn.RecurringJob, decision policies.RecurringJobVerdict) {
	recurringJobViolationsLetThrough.WithLabelValues(decision.LetThroughBecause).Add(float64(len(decision.LetThrough)))
	v.Log.Info("RecurringJob violations let through", "reason", decision.LetThroughBecause, "namespace", req.Namespace, "name", job.Name,
		"operation", req.Operation, "user", req.UserInfo.Username, "violations", decision.LetThrough.ToAggregate().Error())
	if v.Recorder == nil || (req.DryRun != nil && *req.DryRun) {
		return
	}
	reference := &longhorn.RecurringJob{TypeMeta: metav1.TypeMeta{APIVersion: longhorn.GroupVersion.String(), Kind: longhorn.RecurringJobGVK.Kind},
		ObjectMeta: metav1.ObjectMeta{Namespace: req.Namespace, Name: job.Name, UID: job.UID}}
	v.Recorder.Eventf(reference, nil, corev1.EventTypeWarning, "RuleViolationAllowed", string(req.Operation),
		"%s by %s allowed although it breaks backupguard's rules (%s): %s", req.Operation, req.UserInfo.Username, decision.LetThroughBecause, decision.LetThrough.ToAggregate().Error())
}

func (v *RecurringJobValidator) settings(ctx context.Context, namespace string) (policies.LonghornSettings, []string, error) {
	maxRetention, err := v.setting(ctx, namespace, longhorn.SettingRecurringJobMaxRetention)
	if err != nil {
		return policies.LonghornSettings{}, nil, err
	}
	allowWhileDetached, err := v.setting(ctx, namespace, longhorn.SettingAllowRecurringJobWhileVolumeDetached)
	if err != nil {
		return policies.LonghornSettings{}, nil, err
	}
	settings, warnings := policies.LonghornSettingsFrom(maxRetention, allowWhileDetached)
	return settings, warnings, nil
}

// setting reads one Longhorn Setting from the cache; nil when it does not exist.
func (v *RecurringJobValidator) setting(ctx context.Context, namespace, name string) (*longhorn.Setting, error) {
	setting := &longhorn.Setting{}
	err := v.Reader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, setting)
	switch {
	case apierrors.IsNotFound(err):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("reading Longhorn setting %s/%s: %w", namespace, name, err)
	}
	return setting, nil
}

// pollingBackupTargets names the BackupTargets that still poll the store, with their interval.
func (v *RecurringJobValidator) pollingBackupTargets(ctx context.Context, namespace string) (map[string]string, error) {
	targets := &longhorn.BackupTargetList{}
	if err := v.Reader.List(ctx, targets, client.InNamespace(namespace)); err != nil {
		return nil, fmt.Errorf("listing BackupTargets in %s: %w", namespace, err)
	}
	polling := map[string]string{}
	for _, target := range targets.Items {
		if interval := policies.PollingInterval(target.Spec.PollInterval); interval != "" {
			polling[target.Name] = interval
		}
	}
	return polling, nil
}
