package policies

import (
	"fmt"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/backupguard/backupguard/longhorn"
)

// LabelsConfig says which PVCs get which recurring jobs and groups.
type LabelsConfig struct {
	// Provisioners limits labelling to PVCs whose StorageClass has one of these provisioners (or whose
	// static PV uses one of these CSI drivers). Default: [driver.longhorn.io].
	Provisioners []string `json:"provisioners,omitempty"`
	// KeepDefaultGroup keeps a volume in Longhorn's default group when a rule adds labels to it while it
	// is there (it has no recurring labels of its own): recurring-job-group.longhorn.io/default is
	// added and managed like the rule's labels. Without it, any label takes the volume out of the group,
	// and the jobs of the default group stop running for it. Default: true.
	KeepDefaultGroup *bool `json:"keepDefaultGroup,omitempty"`
	// Rules are applied together: a PVC gets the jobs and groups of every rule that matches it.
	Rules []LabelRule `json:"rules,omitempty"`
}

// LabelRule gives the PVCs it matches recurring jobs and groups.
type LabelRule struct {
	// Name identifies the rule in messages.
	Name  string     `json:"name"`
	Match LabelMatch `json:"match,omitempty"`
	// Jobs are RecurringJob names; the PVC gets recurring-job.longhorn.io/<job>: enabled.
	Jobs []string `json:"jobs,omitempty"`
	// Groups are RecurringJob groups; the PVC gets recurring-job-group.longhorn.io/<group>: enabled.
	Groups []string `json:"groups,omitempty"`
}

// LabelMatch selects PVCs. Every criterion given must hold; within a list any entry may match. An empty
// match selects every PVC of a Longhorn provisioner.
type LabelMatch struct {
	Namespaces        []string              `json:"namespaces,omitempty"`
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`
	// Selector matches the PVC's own labels.
	Selector          *metav1.LabelSelector `json:"selector,omitempty"`
	StorageClassNames []string              `json:"storageClassNames,omitempty"`
	// PVCs are "namespace/name" pairs.
	PVCs []string `json:"pvcs,omitempty"`
}

// LabelRules are the label rules compiled for fast matching.
type LabelRules struct {
	provisioners sets.Set[string]
	rules        []compiledRule
	// usesNamespaceLabels tells whether any rule needs the PVC's Namespace object.
	usesNamespaceLabels bool
	keepDefaultGroup    bool
	// namedJobs and namedGroups are what the rules name, each once, sorted, plus the default group
	// when it is not kept (for the warning about taking volumes out of it).
	namedJobs, namedGroups []string
}

type compiledRule struct {
	name              string
	namespaces        sets.Set[string]
	namespaceSelector labels.Selector
	selector          labels.Selector
	storageClassNames sets.Set[string]
	pvcs              sets.Set[string]
	jobs              []string
	groups            []string
}

// CompileLabelRules checks the label configuration and compiles its selectors. Errors name the rule.
func CompileLabelRules(config LabelsConfig, path *field.Path) (*LabelRules, field.ErrorList) {
	var errs field.ErrorList
	provisioners := config.Provisioners
	for i, provisioner := range provisioners {
		for _, msg := range validation.IsQualifiedName(provisioner) {
			errs = append(errs, field.Invalid(path.Child("provisioners").Index(i), provisioner, msg))
		}
	}
	if len(provisioners) == 0 {
		provisioners = []string{longhorn.CSIDriver}
	}
	compiled := &LabelRules{provisioners: sets.New(provisioners...), keepDefaultGroup: config.KeepDefaultGroup == nil || *config.KeepDefaultGroup}
	seenNames := map[string]bool{}
	for i, rule := range config.Rules {
		rulePath := path.Child("rules").Index(i)
		var ruleErrs field.ErrorList
		switch {
		case rule.Name == "":
			ruleErrs = append(ruleErrs, field.Required(rulePath.Child("name"), "a name to identify the rule in messages"))
		case seenNames[rule.Name]:
			ruleErrs = append(ruleErrs, field.Duplicate(rulePath.Child("name"), rule.Name))
		}
		seenNames[rule.Name] = true
		if len(rule.Jobs) == 0 && len(rule.Groups) == 0 {
			ruleErrs = append(ruleErrs, field.Required(rulePath, "at least one of jobs or groups"))
		}
		for j, job := range rule.Jobs {
			ruleErrs = append(ruleErrs, validateJobName(rulePath.Child("jobs").Index(j), job)...)
		}
		for j, group := range rule.Groups {
			ruleErrs = append(ruleErrs, validateGroupName(rulePath.Child("groups").Index(j), group)...)
		}
		matchPath := rulePath.Child("match")
		for j, namespace := range rule.Match.Namespaces {
			for _, msg := range validation.IsDNS1123Label(namespace) {
				ruleErrs = append(ruleErrs, field.Invalid(matchPath.Child("namespaces").Index(j), namespace, msg))
			}
		}
		for j, pvc := range rule.Match.PVCs {
			namespace, name, ok := strings.Cut(pvc, "/")
			if !ok || len(validation.IsDNS1123Label(namespace)) > 0 || len(validation.IsDNS1123Subdomain(name)) > 0 {
				ruleErrs = append(ruleErrs, field.Invalid(matchPath.Child("pvcs").Index(j), pvc, "must be namespace/name of a PVC"))
			}
		}
		namespaceSelector, selectorErrs := compileSelector(rule.Match.NamespaceSelector, matchPath.Child("namespaceSelector"))
		ruleErrs = append(ruleErrs, selectorErrs...)
		selector, selectorErrs := compileSelector(rule.Match.Selector, matchPath.Child("selector"))
		ruleErrs = append(ruleErrs, selectorErrs...)
		for _, err := range ruleErrs {
			if rule.Name != "" && err.Field != rulePath.Child("name").String() {
				err.Detail = strings.TrimSpace(fmt.Sprintf("%s (rule %q)", err.Detail, rule.Name))
			}
		}
		errs = append(errs, ruleErrs...)
		compiled.rules = append(compiled.rules, compiledRule{
			name:              rule.Name,
			namespaces:        setOrNil(rule.Match.Namespaces),
			namespaceSelector: namespaceSelector,
			selector:          selector,
			storageClassNames: setOrNil(rule.Match.StorageClassNames),
			pvcs:              setOrNil(rule.Match.PVCs),
			jobs:              slices.Clone(rule.Jobs),
			groups:            slices.Clone(rule.Groups),
		})
	}
	compiled.usesNamespaceLabels = slices.ContainsFunc(compiled.rules, func(rule compiledRule) bool { return rule.namespaceSelector != nil })
	jobs, groups := sets.New[string](), sets.New[string]()
	for _, rule := range compiled.rules {
		jobs.Insert(rule.jobs...)
		groups.Insert(rule.groups...)
	}
	if !compiled.keepDefaultGroup && len(compiled.rules) > 0 {
		groups.Insert(longhorn.DefaultGroup)
	}
	compiled.namedJobs, compiled.namedGroups = sets.List(jobs), sets.List(groups)
	return compiled, errs
}

// NamedJobsAndGroups are the recurring jobs and groups whose existence the PVC label decision reads:
// those the rules name, and the default group when it is not kept, each once, sorted. They are worked
// out once, when the config compiles.
func (r *LabelRules) NamedJobsAndGroups() (jobs, groups []string) {
	return r.namedJobs, r.namedGroups
}

// IsProvisioner tells whether a StorageClass provisioner or a PV's CSI driver is one of
// labels.provisioners: what makes a volume Longhorn's, for labels and for placement alike.
func (r *LabelRules) IsProvisioner(driver string) bool { return r.provisioners.Has(driver) }

// validateJobName accepts what can be a RecurringJob's name, the name part of its label key.
func validateJobName(path *field.Path, name string) field.ErrorList {
	switch {
	case name == "source":
		return field.ErrorList{field.Invalid(path, name, "is reserved: recurring-job.longhorn.io/source marks a PVC as the source of its Volume's labels")}
	case len(name) > maxRecurringJobNameLength || !recurringJobNamePattern.MatchString(name):
		return field.ErrorList{field.Invalid(path, name, fmt.Sprintf("must be a RecurringJob name: at most %d characters matching %s", maxRecurringJobNameLength, recurringJobNamePattern))}
	}
	return nil
}

// validateGroupName accepts a group a RecurringJob can have and a volume can join: the same rule as
// RecurringJob validation.
func validateGroupName(path *field.Path, name string) field.ErrorList {
	if problem := groupNameProblem(name); problem != "" {
		return field.ErrorList{field.Invalid(path, name, "must be a RecurringJob group: "+problem)}
	}
	return nil
}

func compileSelector(selector *metav1.LabelSelector, path *field.Path) (labels.Selector, field.ErrorList) {
	if selector == nil {
		return nil, nil
	}
	if errs := metav1validation.ValidateLabelSelector(selector, metav1validation.LabelSelectorValidationOptions{}, path); len(errs) > 0 {
		return nil, errs
	}
	compiled, err := metav1.LabelSelectorAsSelector(selector)
	if err != nil {
		return nil, field.ErrorList{field.Invalid(path, selector, err.Error())}
	}
	return compiled, nil
}

func setOrNil(items []string) sets.Set[string] {
	if len(items) == 0 {
		return nil
	}
	return sets.New(items...)
}
