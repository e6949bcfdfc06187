package offline

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/apimachinery/pkg/util/validation/field"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/backupguard/backupguard/longhorn"
)

// longhornKinds are the kinds of Longhorn's API group, as Longhorn v1.12.1 registers them
// (k8s/pkg/apis/longhorn/v1beta2/register.go, addKnownTypes, at commit 8320238242e8c804325d9588ec1db10feb9f36b8
// of github.com/longhorn/longhorn-manager). Any other kind in the group is a typo that the cluster
// would refuse, so `validate` refuses it too instead of skipping it.
var longhornKinds = sets.New(
	"BackingImage", "BackingImageDataSource", "BackingImageManager", "Backup", "BackupBackingImage",
	"BackupTarget", "BackupVolume", "Engine", "EngineFrontend", "EngineImage", "InstanceManager", "Node",
	"Orphan", "RecurringJob", "Replica", "Setting", "ShareManager", "Shard", "ShardGroup", "Snapshot",
	"SupportBundle", "SystemBackup", "SystemRestore", "Volume", "VolumeAttachment",
)

// checkedKinds are the kinds `validate` decides; a kind a small edit away from one of them is taken
// for a typo of it.
var checkedKinds = []schema.GroupKind{longhorn.RecurringJobGVK.GroupKind(), pvcGroupKind, jobGroupKind, cronJobGroupKind}

// builtinKinds are the kinds of Kubernetes' own API groups, which are never typos (Pod is two edits
// from Job).
var builtinKinds = func() map[schema.GroupKind]bool {
	kinds := map[schema.GroupKind]bool{}
	for gvk := range clientgoscheme.Scheme.AllKnownTypes() {
		kinds[gvk.GroupKind()] = true
	}
	return kinds
}()

// kindError says why a kind that `validate` does not decide is still an error: a kind Longhorn's
// group does not have, or a near miss of a kind `validate` checks. It returns nil for any other kind,
// which is skipped.
func kindError(groupKind schema.GroupKind) *field.Error {
	kind := groupKind.Kind
	if kind == "" || builtinKinds[groupKind] {
		return nil
	}
	path := field.NewPath("kind")
	if groupKind.Group == longhorn.GroupVersion.Group {
		if longhornKinds.Has(strings.TrimSuffix(kind, "List")) {
			return nil
		}
		message := fmt.Sprintf("%s has no such kind", longhorn.GroupVersion.Group)
		if guess := closestKind(kind, sets.List(longhornKinds)); guess != "" {
			message += fmt.Sprintf(": did you mean %q?", guess)
		}
		return field.Invalid(path, kind, message)
	}
	for _, checked := range checkedKinds {
		if kind == checked.Kind {
			continue
		}
		if strings.EqualFold(kind, checked.Kind) || groupKind.Group == checked.Group && nearMiss(kind, checked.Kind) {
			return field.Invalid(path, kind, fmt.Sprintf("did you mean %q? kinds are case-sensitive and backupguard checks %s", checked.Kind, checked.String()))
		}
	}
	return nil
}

// closestKind is the one of kinds that kind is a near miss of, or "".
func closestKind(kind string, kinds []string) string {
	best, bestDistance := "", 0
	for _, candidate := range kinds {
		if !strings.EqualFold(kind, candidate) && !nearMiss(kind, candidate) {
			continue
		}
		if distance := editDistance(strings.ToLower(kind), strings.ToLower(candidate)); best == "" || distance < bestDistance {
			best, bestDistance = candidate, distance
		}
	}
	return best
}

// nearMiss is true when kind is a likely typo of target: one edit away from a name of 7 letters or more,
// two from one of 12 or more (short names are too close to real kinds: Pod and Job).
func nearMiss(kind, target string) bool {
	allowed := 0
	switch {
	case len(target) >= 12:
		allowed = 2
	case len(target) >= 7:
		allowed = 1
	}
	return editDistance(strings.ToLower(kind), strings.ToLower(target)) <= allowed
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	previous := make([]int, len(b)+1)
	for j := range previous {
		previous[j] = j
	}
	for i := 1; i <= len(a); i++ {
		current := make([]int, len(b)+1)
		current[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			current[j] = slices.Min([]int{previous[j] + 1, current[j-1] + 1, previous[j-1] + cost})
		}
		previous = current
	}
	return previous[len(b)]
}
