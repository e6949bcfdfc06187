package policies

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/backupguard/backupguard/longhorn"
)

// recurringJobBuilder makes RecurringJobs for tests, starting from a valid daily backup.
type recurringJobBuilder struct{ job longhorn.RecurringJob }

func makeRecurringJob(name string) *recurringJobBuilder {
	return &recurringJobBuilder{job: longhorn.RecurringJob{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "longhorn-system"},
		Spec: longhorn.RecurringJobSpec{
			Task: longhorn.TaskBackup, Cron: "0 2 * * *", Retain: 7, Concurrency: 2,
		},
	}}
}

func (b *recurringJobBuilder) Namespace(ns string) *recurringJobBuilder {
	b.job.Namespace = ns
	return b
}
func (b *recurringJobBuilder) SpecName(n string) *recurringJobBuilder { b.job.Spec.Name = n; return b }
func (b *recurringJobBuilder) Task(t longhorn.Task) *recurringJobBuilder {
	b.job.Spec.Task = t
	return b
}
func (b *recurringJobBuilder) Cron(c string) *recurringJobBuilder { b.job.Spec.Cron = c; return b }
func (b *recurringJobBuilder) Retain(r int) *recurringJobBuilder  { b.job.Spec.Retain = r; return b }
func (b *recurringJobBuilder) Concurrency(c int) *recurringJobBuilder {
	b.job.Spec.Concurrency = c
	return b
}
func (b *recurringJobBuilder) Groups(g ...string) *recurringJobBuilder {
	b.job.Spec.Groups = g
	return b
}
func (b *recurringJobBuilder) Label(k, v string) *recurringJobBuilder {
	if b.job.Spec.Labels == nil {
		b.job.Spec.Labels = map[string]string{}
	}
	b.job.Spec.Labels[k] = v
	return b
}
func (b *recurringJobBuilder) Parameter(k, v string) *recurringJobBuilder {
	if b.job.Spec.Parameters == nil {
		b.job.Spec.Parameters = map[string]string{}
	}
	b.job.Spec.Parameters[k] = v
	return b
}
func (b *recurringJobBuilder) RetentionPolicy(policy longhorn.RetentionPolicy) *recurringJobBuilder {
	b.job.Spec.RetentionPolicy = policy
	return b
}
func (b *recurringJobBuilder) RetainAge(age string) *recurringJobBuilder {
	b.job.Spec.RetainAge = age
	return b
}
func (b *recurringJobBuilder) Obj() *longhorn.RecurringJob { return b.job.DeepCopy() }

var testNow = time.Date(2026, time.November, 21, 12, 0, 0, 0, time.UTC)

func defaultEnvironment(job *longhorn.RecurringJob) RecurringJobEnvironment {
	return RecurringJobEnvironment{
		Namespace:         job.Namespace,
		LonghornNamespace: DefaultLonghornNamespace,
		Settings:          LonghornSettings{RecurringJobMaxRetention: DefaultRecurringJobMaxRetention, AllowRecurringJobWhileVolumeDetached: true},
		Now:               testNow,
	}
}
