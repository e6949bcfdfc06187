package lookup

import (
	"net/http"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"
)

// NewRESTMapper is controller-runtime's discovery-backed RESTMapper with its RESTMapping answers
// remembered. The cache asks it, on every read of a namespace-restricted type (the Longhorn objects),
// whether the type is namespaced; unremembered, that costs most of a cached read.
func NewRESTMapper(config *rest.Config, httpClient *http.Client) (meta.RESTMapper, error) {
	mapper, err := apiutil.NewDynamicRESTMapper(config, httpClient)
	if err != nil {
		return nil, err
	}
	return &memoRESTMapper{RESTMapper: mapper}, nil
}

// memoRESTMapper remembers successful RESTMapping answers. The kinds backupguard reads do not change
// scope, and a version that goes away fails at the API server, not here.
type memoRESTMapper struct {
	meta.RESTMapper
	mappings sync.Map // "group/kind/version,..." → *meta.RESTMapping
}

func (m *memoRESTMapper) RESTMapping(groupKind schema.GroupKind, versions ...string) (*meta.RESTMapping, error) {
	key := groupKind.Group + "/" + groupKind.Kind + "/" + strings.Join(versions, ",")
	if mapping, found := m.mappings.Load(key); found {
		return mapping.(*meta.RESTMapping), nil
	}
	mapping, err := m.RESTMapper.RESTMapping(groupKind, versions...)
	if err != nil {
		return nil, err
	}
	m.mappings.Store(key, mapping)
	return mapping, nil
}
