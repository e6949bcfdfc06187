package offline

import (
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// parseNode reads a document again as a YAML node tree, for the lines of its fields, with lines counted
// from the top of its file: firstLine is the file line of the raw document's first line. Nil when the
// document does not parse as a node tree (the objects come from the strict reader; lines are a
// convenience).
func parseNode(raw []byte, firstLine int) *yaml.Node {
	var document yaml.Node
	if err := yaml.Unmarshal(raw, &document); err != nil || len(document.Content) == 0 {
		return nil
	}
	root := document.Content[0]
	shiftLines(root, firstLine-1)
	return root
}

func shiftLines(node *yaml.Node, by int) {
	node.Line += by
	for _, child := range node.Content {
		shiftLines(child, by)
	}
}

// listItemNode is the node of the i-th item of a List's items, or nil.
func listItemNode(list *yaml.Node, i int) *yaml.Node {
	items := mappingValue(list, "items")
	if items == nil || items.Kind != yaml.SequenceNode || i >= len(items.Content) {
		return nil
	}
	return items.Content[i]
}

// FieldLine is the line of the field a path names in the document (spec.template.spec.volumes[1].name,
// metadata.labels[app]), or of the deepest part of it the document has: a field that is missing is
// reported where its parent is. It is the document's first line when nothing is known.
func (d Document) FieldLine(path string) int {
	node, line := d.Node, d.Line
	if node != nil {
		line = node.Line
	}
	for _, segment := range splitFieldPath(path) {
		var key *yaml.Node
		key, node = child(node, segment)
		if node == nil {
			break
		}
		if key != nil {
			line = key.Line
		} else {
			line = node.Line
		}
	}
	return line
}

// child finds a mapping's value by key, or a sequence's item by index; key is nil for an item.
func child(node *yaml.Node, segment string) (key, value *yaml.Node) {
	if node == nil {
		return nil, nil
	}
	switch node.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == segment {
				return node.Content[i], node.Content[i+1]
			}
		}
	case yaml.SequenceNode:
		if index, err := strconv.Atoi(segment); err == nil && index >= 0 && index < len(node.Content) {
			return nil, node.Content[index]
		}
	}
	return nil, nil
}

func mappingValue(node *yaml.Node, key string) *yaml.Node {
	_, value := child(node, key)
	return value
}

// splitFieldPath splits a field.Path string into its names, indexes and keys: "a.b[0].c[x.y/z]" is
// a, b, 0, c, x.y/z.
func splitFieldPath(path string) []string {
	var segments []string
	var current strings.Builder
	flush := func() {
		if current.Len() > 0 {
			segments = append(segments, current.String())
			current.Reset()
		}
	}
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '.':
			flush()
		case '[':
			flush()
			end := strings.IndexByte(path[i:], ']')
			if end < 0 {
				end = len(path) - i
			}
			segments = append(segments, path[i+1:i+end])
			i += end
		default:
			current.WriteByte(path[i])
		}
	}
	flush()
	return segments
}
