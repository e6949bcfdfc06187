package longhorn

import (
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/runtime"
)

// DeepCopyInto copies the receiver into out.
func (j *RecurringJob) DeepCopyInto(out *RecurringJob) {
	*out = *j
	out.TypeMeta = j.TypeMeta
	j.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec.Groups = slices.Clone(j.Spec.Groups)
	out.Spec.Labels = maps.Clone(j.Spec.Labels)
	out.Spec.Parameters = maps.Clone(j.Spec.Parameters)
}

// DeepCopy returns a deep copy.
func (j *RecurringJob) DeepCopy() *RecurringJob {
	if j == nil {
		return nil
	}
	out := new(RecurringJob)
	j.DeepCopyInto(out)
	return out
}

// DeepCopyObject implements runtime.Object.
func (j *RecurringJob) DeepCopyObject() runtime.Object { return j.DeepCopy() }

// DeepCopyObject implements runtime.Object.
func (l *RecurringJobList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &RecurringJobList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]RecurringJob, len(l.Items))
		for i := range l.Items {
			l.Items[i].DeepCopyInto(&out.Items[i])
		}
	}
	return out
}

// DeepCopyObject implements runtime.Object.
func (s *Setting) DeepCopyObject() runtime.Object {
	if s == nil {
		return nil
	}
	out := &Setting{TypeMeta: s.TypeMeta, Value: s.Value}
	s.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	return out
}

// DeepCopyObject implements runtime.Object.
func (l *SettingList) DeepCopyObject() runtime.Object {
	if l == nil {
		return nil
	}
	out := &SettingList{TypeMeta: l.TypeMeta}
	l.ListMeta.DeepCopyInto(&out.ListMeta)
	if l.Items != nil {
		out.Items = make([]Setting, len(l.Items))
		for i := range l.Items {
			out.Items[i] = *l.Items[i].DeepCopyObject().(*Setting)
		}
	}
	return out
}
