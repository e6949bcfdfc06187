package webhook

import (
	"context"
	"fmt"

	admissionv1 "k8s.io/api/admission/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/backupguard/backupguard/longhorn"
	"github.com/backupguard/backupguard/policies"
)

// RecurringJobPath is where the API server sends RecurringJob admission reviews.
const RecurringJobPath = "/validate-longhorn-io-v1beta2-recurringjob"

// RecurringJobValidator admits or denies RecurringJobs.
type RecurringJobValidator struct {
	// Reader is the manager's cached client; it reads Longhorn Settings.
	Reader client.Reader
	// Config returns the configuration in force.
	Config func() *policies.Config
	Clock  clock.PassiveClock
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
	if len(req.Object.Raw) == 0 {
		return badRequest(fmt.Errorf("the %s request carries no object", req.Operation))
	}
	object, err := longhorn.DecodeJSONObject(req.Object.Raw)
	if err != nil {
		return badRequest(fmt.Errorf("the object is not a JSON object: %w", err))
	}
	job, errs := longhorn.DecodeRecurringJob(object)
	if len(errs) > 0 {
		return verdict(longhorn.RecurringJobGVK.GroupKind(), job.Name, errs, nil)
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
	}
	if env.Window != nil {
		if env.PollingBackupTargets, err = v.pollingBackupTargets(ctx, config.Longhorn.Namespace); err != nil {
			return lookupFailed(err)
		}
	}
	errs, warnings := policies.ValidateRecurringJob(job, env)
	return verdict(longhorn.RecurringJobGVK.GroupKind(), job.Name, errs, append(settingWarnings, warnings...))
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
