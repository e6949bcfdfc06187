// Package offline runs backupguard's policies on manifest files, without a cluster: the engine behind
// `backupguard validate`.
package offline

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	yamlnode "go.yaml.in/yaml/v3"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/backupguard/backupguard/longhorn"
)

// Document is one object read from the input.
type Document struct {
	// Source says where the object came from: "file#N" for the N-th document of a file, with " items[i]"
	// for an item of a List.
	Source string
	// File and Line locate the document's first line (an item's own, in a List), for CI annotations.
	File   string
	Line   int
	Object map[string]any
	// Node is the object as a YAML node tree, with lines counted from the top of File, which locates
	// its fields (FieldLine). Nil when unknown.
	Node *yamlnode.Node
}

// InputError is unreadable or unparseable input; `validate` exits 2 on it.
type InputError struct {
	Source string
	Err    error
}

func (e *InputError) Error() string { return e.Source + ": " + e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// manifestExtensions are the files a directory walk reads.
var manifestExtensions = []string{".yaml", ".yml", ".json"}

// ReadOptions say which input a run leaves out.
type ReadOptions struct {
	// Exclude are glob patterns (filepath.Match) of files and directories to leave out. A pattern
	// without a slash matches a file or directory name anywhere ("templates", "*.tpl.yaml"); one with a
	// slash matches a path as given on the command line or any leading part of it ("charts/*/templates").
	Exclude []string
	// SkipUnparseable leaves out a file that is not YAML (a Helm template) instead of failing the run.
	SkipUnparseable bool
}

// CheckPatterns says whether every exclude pattern is a valid glob.
func (o ReadOptions) CheckPatterns() error {
	for _, pattern := range o.Exclude {
		if _, err := filepath.Match(pattern, ""); err != nil {
			return fmt.Errorf("--exclude %q: %w", pattern, err)
		}
	}
	return nil
}

// excludes says whether path is left out by a pattern.
func (o ReadOptions) excludes(path string) bool {
	elements := strings.Split(filepath.ToSlash(filepath.Clean(path)), "/")
	for _, pattern := range o.Exclude {
		pattern = filepath.ToSlash(filepath.Clean(pattern))
		for i, element := range elements {
			candidate := element
			if strings.Contains(pattern, "/") {
				candidate = strings.Join(elements[:i+1], "/")
			}
			if matched, _ := filepath.Match(pattern, candidate); matched {
				return true
			}
		}
	}
	return false
}

// ReadPaths reads every document of the given paths: files, directories (recursively, manifest files
// only, in lexical order) and "-" for stdin.
func ReadPaths(paths []string, stdin io.Reader) ([]Document, error) {
	documents, _, err := ReadPathsWith(paths, stdin, ReadOptions{})
	return documents, err
}

// ReadPathsWith reads like ReadPaths, leaving out what options say. unparseable are the files left out
// because they are not YAML, with the reason.
func ReadPathsWith(paths []string, stdin io.Reader, options ReadOptions) (documents []Document, unparseable []*InputError, err error) {
	parse := func(data []byte, source string) error {
		docs, err := ParseDocuments(data, source)
		var inputErr *InputError
		switch {
		case err == nil:
			documents = append(documents, docs...)
			return nil
		case !errors.As(err, &inputErr) || source == "stdin":
			return err
		case options.SkipUnparseable:
			unparseable = append(unparseable, inputErr)
			return nil
		}
		return &InputError{Source: inputErr.Source, Err: fmt.Errorf("%w (a template? leave it out with --exclude, or skip such files with --skip-unparseable)", inputErr.Err)}
	}
	for _, path := range paths {
		if path == "-" {
			data, err := io.ReadAll(stdin)
			if err != nil {
				return nil, nil, &InputError{Source: "stdin", Err: err}
			}
			if err := parse(data, "stdin"); err != nil {
				return nil, nil, err
			}
			continue
		}
		files, err := manifestFiles(path, options)
		if err != nil {
			return nil, nil, err
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				return nil, nil, &InputError{Source: file, Err: err}
			}
			if err := parse(data, file); err != nil {
				return nil, nil, err
			}
		}
	}
	return documents, unparseable, nil
}

func manifestFiles(path string, options ReadOptions) ([]string, error) {
	if options.excludes(path) {
		return nil, nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, &InputError{Source: path, Err: errors.Unwrap(err)}
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	var files []string
	err = filepath.WalkDir(path, func(file string, entry fs.DirEntry, err error) error {
		if err != nil {
			return &InputError{Source: file, Err: err}
		}
		if file != path && options.excludes(file) {
			if entry.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if !entry.IsDir() && slices.Contains(manifestExtensions, strings.ToLower(filepath.Ext(file))) {
			files = append(files, file)
		}
		return nil
	})
	return files, err
}

// ParseDocuments splits multi-document YAML (or JSON) into objects and unwraps List kinds. Documents that
// hold nothing (only comments or "---") are left out; the document numbers still count them, so a number
// matches what an editor shows between separators.
func ParseDocuments(data []byte, source string) ([]Document, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	startLines := documentStartLines(data)
	var documents []Document
	for number := 1; ; number++ {
		raw, err := reader.Read()
		if err == io.EOF {
			return documents, nil
		}
		// The reader folds a "---" that directly follows another into the next document instead of
		// returning the empty document between them; count that one too.
		if number > 1 && bytes.HasPrefix(raw, []byte("---")) {
			number++
		}
		docSource := fmt.Sprintf("%s#%d", source, number)
		if err != nil {
			return nil, &InputError{Source: docSource, Err: err}
		}
		if isBlankDocument(raw) {
			continue
		}
		// Strict: a key given twice is an error here as it is for kubectl, not a silent last-one-wins.
		jsonData, err := yaml.YAMLToJSONStrict(raw)
		if err != nil {
			return nil, &InputError{Source: docSource, Err: fmt.Errorf("not valid YAML: %w", err)}
		}
		if string(bytes.TrimSpace(jsonData)) == "null" {
			continue
		}
		object, err := longhorn.DecodeJSONObject(jsonData)
		if err != nil {
			return nil, &InputError{Source: docSource, Err: fmt.Errorf("expected a Kubernetes object (a mapping): %w", err)}
		}
		firstLine := 0
		if number <= len(startLines) {
			firstLine = startLines[number-1]
		}
		if bytes.HasPrefix(raw, []byte("---")) {
			// The folded separator is the raw document's first line.
			firstLine--
		}
		unwrapped, err := unwrapList(object, parseNode(raw, firstLine), docSource)
		if err != nil {
			return nil, err
		}
		for i := range unwrapped {
			unwrapped[i].File = source
			switch {
			case unwrapped[i].Node != nil:
				unwrapped[i].Line = unwrapped[i].Node.Line
			case number <= len(startLines):
				unwrapped[i].Line = startLines[number-1]
			}
		}
		documents = append(documents, unwrapped...)
	}
}

// documentStartLines gives, for each document of a multi-document YAML file, the number of its first
// line. A separator is a line starting with "---" followed by nothing but blanks or a comment, as for
// the reader that splits the documents.
func documentStartLines(data []byte) []int {
	starts := []int{1}
	for number, line := range bytes.Split(data, []byte("\n")) {
		rest, found := bytes.CutPrefix(line, []byte("---"))
		if !found {
			continue
		}
		if trimmed := bytes.TrimSpace(rest); len(trimmed) == 0 || trimmed[0] == '#' {
			if number == 0 {
				// A leading separator opens the first document rather than ending an empty one.
				starts = starts[:0]
			}
			starts = append(starts, number+2)
		}
	}
	return starts
}

func isBlankDocument(raw []byte) bool {
	for line := range bytes.SplitSeq(raw, []byte("\n")) {
		trimmed := bytes.TrimSpace(line)
		if len(trimmed) > 0 && trimmed[0] != '#' && !bytes.Equal(trimmed, []byte("---")) {
			return false
		}
	}
	return true
}

// unwrapList returns the items of a List kind (v1 List or any *List with items), else the object itself.
func unwrapList(object map[string]any, node *yamlnode.Node, source string) ([]Document, error) {
	kind, _ := object["kind"].(string)
	items, hasItems := object["items"]
	if !strings.HasSuffix(kind, "List") || !hasItems {
		return []Document{{Source: source, Object: object, Node: node}}, nil
	}
	list, ok := items.([]any)
	if !ok && items != nil {
		return nil, &InputError{Source: source, Err: fmt.Errorf("items of %s must be a list", kind)}
	}
	documents := make([]Document, 0, len(list))
	for i, item := range list {
		itemSource := fmt.Sprintf("%s items[%d]", source, i)
		itemObject, ok := item.(map[string]any)
		if !ok {
			return nil, &InputError{Source: itemSource, Err: errors.New("expected a Kubernetes object (a mapping)")}
		}
		nested, err := unwrapList(itemObject, listItemNode(node, i), itemSource)
		if err != nil {
			return nil, err
		}
		documents = append(documents, nested...)
	}
	return documents, nil
}
