// Package crds_test checks that the test CRDs in this folder are faithful to Longhorn's real ones: for
// every CRD in ../shared/longhorn-crds (beside the repository), the file of the same plural here must
// have the same names, scope, versions, subresources and, with descriptions left out, the same
// schema: properties, types, formats, enums, defaults, required lists, nullable, bounds,
// additionalProperties, x-kubernetes-* markers and CEL validations.
package crds_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// referenceDir is where Longhorn's real CRDs are, relative to the repository's top folder: the shared
// folder beside the clone, as CI lays it out.
var referenceDir = filepath.Join("..", "shared", "longhorn-crds")

// TestCRDsMatchLonghorns compares every reference CRD with ours.
func TestCRDsMatchLonghorns(t *testing.T) {
	root := repoRoot(t)
	references := filepath.Join(root, referenceDir)
	if info, err := os.Stat(references); err != nil || !info.IsDir() {
		t.Fatalf("Longhorn's real CRDs must be in %s (the shared folder beside the repository) for this test, "+
			"which proves test/crds faithful to them: %v", references, err)
	}
	ours := filepath.Join(root, "test", "crds")

	// Each reference file and its counterpart: <dir>/<kind>.crd.yaml against test/crds/<dir>/<plural>.yaml.
	compared := map[string]bool{}
	for _, dir := range []string{".", "next"} {
		files, err := filepath.Glob(filepath.Join(references, dir, "*.crd.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			reference := readCRD(t, file, false)
			mine := filepath.Join(ours, dir, reference.Spec.Names.Plural+".yaml")
			compared[mine] = true
			t.Run(filepath.Join(dir, filepath.Base(file)), func(t *testing.T) {
				if _, err := os.Stat(mine); err != nil {
					t.Fatalf("no test CRD for %s: %v", reference.Name, err)
				}
				if diff := diffCRDs(t, reference, readCRD(t, mine, true)); diff != "" {
					t.Errorf("%s differs from Longhorn's %s (-Longhorn +ours):\n%s", mine, file, diff)
				}
			})
		}
	}
	if len(compared) == 0 {
		t.Fatalf("no *.crd.yaml in %s", references)
	}

	// Every test CRD must have been compared: none is made up.
	for _, dir := range []string{".", "next"} {
		files, err := filepath.Glob(filepath.Join(ours, dir, "*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			if !compared[file] {
				t.Errorf("%s has no Longhorn CRD to be compared with in %s", file, references)
			}
		}
	}
}

// diffCRDs compares what makes two CRDs behave alike, as JSON trees: the name and the whole spec, with
// the descriptions left out, and the printer columns too when ours has none (they change what kubectl
// get prints, nothing else). Metadata other than the name (labels, annotations) does not count.
func diffCRDs(t *testing.T, reference, ours *apiextensionsv1.CustomResourceDefinition) string {
	t.Helper()
	keepColumns := slices.ContainsFunc(ours.Spec.Versions, func(version apiextensionsv1.CustomResourceDefinitionVersion) bool {
		return len(version.AdditionalPrinterColumns) > 0
	})
	return cmp.Diff(normalize(t, reference, keepColumns), normalize(t, ours, keepColumns))
}

func normalize(t *testing.T, crd *apiextensionsv1.CustomResourceDefinition, keepColumns bool) map[string]any {
	t.Helper()
	spec := crd.Spec.DeepCopy()
	for i := range spec.Versions {
		version := &spec.Versions[i]
		if !keepColumns {
			version.AdditionalPrinterColumns = nil
		}
		for j := range version.AdditionalPrinterColumns {
			version.AdditionalPrinterColumns[j].Description = ""
		}
		if version.Schema != nil {
			stripDescriptions(version.Schema.OpenAPIV3Schema)
		}
	}
	data, err := json.Marshal(map[string]any{"apiVersion": crd.APIVersion, "kind": crd.Kind, "name": crd.Name, "spec": spec})
	if err != nil {
		t.Fatal(err)
	}
	var tree map[string]any
	if err := json.Unmarshal(data, &tree); err != nil {
		t.Fatal(err)
	}
	return tree
}

// stripDescriptions empties every description in a schema, however deep.
func stripDescriptions(schema *apiextensionsv1.JSONSchemaProps) {
	if schema == nil {
		return
	}
	schema.Description = ""
	for _, schemas := range []map[string]apiextensionsv1.JSONSchemaProps{schema.Properties, schema.PatternProperties, schema.Definitions} {
		for name, child := range schemas {
			stripDescriptions(&child)
			schemas[name] = child
		}
	}
	for name, dependency := range schema.Dependencies {
		stripDescriptions(dependency.Schema)
		schema.Dependencies[name] = dependency
	}
	for _, schemas := range [][]apiextensionsv1.JSONSchemaProps{schema.AllOf, schema.OneOf, schema.AnyOf} {
		for i := range schemas {
			stripDescriptions(&schemas[i])
		}
	}
	stripDescriptions(schema.Not)
	if schema.Items != nil {
		stripDescriptions(schema.Items.Schema)
		for i := range schema.Items.JSONSchemas {
			stripDescriptions(&schema.Items.JSONSchemas[i])
		}
	}
	if schema.AdditionalProperties != nil {
		stripDescriptions(schema.AdditionalProperties.Schema)
	}
	if schema.AdditionalItems != nil {
		stripDescriptions(schema.AdditionalItems.Schema)
	}
}

// readCRD reads the one CustomResourceDefinition in file; strictly for ours, so that a misspelt keyword
// fails instead of being dropped.
func readCRD(t *testing.T, file string, strict bool) *apiextensionsv1.CustomResourceDefinition {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var found []*apiextensionsv1.CustomResourceDefinition
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		document, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if len(strings.TrimSpace(stripComments(document))) == 0 {
			continue
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		unmarshal := yaml.Unmarshal
		if strict {
			unmarshal = yaml.UnmarshalStrict
		}
		if err := unmarshal(document, crd); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if crd.Kind != "CustomResourceDefinition" {
			t.Fatalf("%s: a %q where a CustomResourceDefinition was expected", file, crd.Kind)
		}
		found = append(found, crd)
	}
	if len(found) != 1 {
		t.Fatalf("%s: want one CustomResourceDefinition, found %d", file, len(found))
	}
	return found[0]
}

func stripComments(document []byte) string {
	var kept []string
	for line := range strings.SplitSeq(string(document), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n")
}

// repoRoot is the folder with go.mod, found upwards from the test's working directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's working directory")
		}
		dir = parent
	}
}
