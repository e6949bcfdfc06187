package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/backupguard/backupguard/test/cluster"
)

// impliedVerbs are granted for requests the audit log records under another verb, or that only rare
// paths make: server-side apply creates an object through a patch (authorised as create too), and
// event recorders patch an Event when it repeats.
var impliedVerbs = sets.New(
	"networking.k8s.io/networkpolicies create",
	"cilium.io/ciliumnetworkpolicies create",
	"/configmaps create",
	"events.k8s.io/events patch",
	"/events patch",
)

type auditEvent struct {
	Verb string `json:"verb"`
	User struct {
		Username string `json:"username"`
	} `json:"user"`
	ImpersonatedUser *struct {
		Username string `json:"username"`
	} `json:"impersonatedUser"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Subresource string `json:"subresource"`
		APIGroup    string `json:"apiGroup"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// checkServiceAccountVerbs compares what the shipped ServiceAccount did during the whole suite, from
// the API server's audit log, with what manifests/base/rbac.yaml grants: a forbidden request means a
// verb is missing; a granted verb never used means the grant is too wide.
func checkServiceAccountVerbs() error {
	used, forbidden, err := auditedVerbs(testCluster.AuditLog)
	if err != nil {
		return err
	}
	granted, err := grantedVerbs(filepath.Join(cluster.RepoRoot(), "manifests", "base", "rbac.yaml"))
	if err != nil {
		return err
	}
	var problems []string
	for _, verb := range sets.List(forbidden) {
		problems = append(problems, "forbidden, so missing from the RBAC: "+verb)
	}
	implied := impliedVerbs.Clone()
	for _, verb := range sets.List(used) {
		// An informer starts with a list, or, where the API server supports it (as this one does),
		// with a streaming watch that it authorises as watch; older servers still need list.
		if resource, found := strings.CutSuffix(verb, " watch"); found {
			implied.Insert(resource + " list")
		}
	}
	for _, verb := range sets.List(granted.Difference(used).Difference(implied)) {
		problems = append(problems, "granted but never used: "+verb)
	}
	if len(problems) > 0 {
		return fmt.Errorf("the ServiceAccount's RBAC does not fit what backupguard does:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

func auditedVerbs(path string) (used, forbidden sets.Set[string], err error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer file.Close()
	used, forbidden = sets.New[string](), sets.New[string]()
	scanner := bufio.NewScanner(file)
	scanner.Buffer(make([]byte, 1024*1024), 16*1024*1024)
	for scanner.Scan() {
		var event auditEvent
		if json.Unmarshal(scanner.Bytes(), &event) != nil || event.ObjectRef == nil {
			continue
		}
		user := event.User.Username
		if event.ImpersonatedUser != nil {
			user = event.ImpersonatedUser.Username
		}
		if user != cluster.ServiceAccountUser {
			continue
		}
		resource := event.ObjectRef.APIGroup + "/" + event.ObjectRef.Resource
		if event.ObjectRef.Subresource != "" {
			resource += "/" + event.ObjectRef.Subresource
		}
		key := resource + " " + event.Verb
		if event.ResponseStatus.Code == 403 {
			forbidden.Insert(key)
		} else {
			used.Insert(key)
		}
	}
	return used, forbidden, scanner.Err()
}

func grantedVerbs(path string) (sets.Set[string], error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	granted := sets.New[string]()
	decoder := utilyaml.NewYAMLOrJSONDecoder(file, 4096)
	for {
		var role rbacv1.ClusterRole // Roles and ClusterRoles share the rules field.
		if err := decoder.Decode(&role); err != nil {
			if err.Error() == "EOF" {
				return granted, nil
			}
			return nil, err
		}
		if role.Kind != "Role" && role.Kind != "ClusterRole" {
			continue
		}
		for _, rule := range role.Rules {
			for _, group := range rule.APIGroups {
				for _, resource := range rule.Resources {
					for _, verb := range rule.Verbs {
						granted.Insert(group + "/" + resource + " " + verb)
					}
				}
			}
		}
	}
}
