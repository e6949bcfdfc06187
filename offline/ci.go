package offline

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// WriteGitHub prints GitHub Actions workflow commands: an error annotation per violation at the line of
// its field, and a warning annotation per distinct warning of a file at the first object that has it,
// with how many objects of the file share it, so that a warning every job gets does not use up GitHub's
// per-step annotation limit.
func (r Report) WriteGitHub(w io.Writer) error {
	type fileWarning struct{ file, text string }
	sharing := map[fileWarning][]Result{}
	for _, result := range r.Results {
		for _, warning := range result.Warnings {
			key := fileWarning{result.File, warning}
			if n := len(sharing[key]); n == 0 || sharing[key][n-1].Source != result.Source {
				sharing[key] = append(sharing[key], result)
			}
		}
	}
	reported := map[fileWarning]bool{}
	for _, result := range r.Results {
		title := fmt.Sprintf("backupguard: %s %s", result.Kind, result.objectName())
		for _, violation := range result.Violations {
			line := violation.Line
			if line == 0 {
				line = result.Line
			}
			if _, err := fmt.Fprintf(w, "::error %s::%s\n", githubProperties(result.File, line, title), githubData(violation.Field+": "+violation.Message)); err != nil {
				return err
			}
		}
		for _, warning := range result.Warnings {
			key := fileWarning{result.File, warning}
			if reported[key] {
				continue
			}
			reported[key] = true
			text, warningTitle := warning, title
			if objects := sharing[key]; len(objects) > 1 {
				warningTitle = fmt.Sprintf("backupguard: %d objects", len(objects))
				text += fmt.Sprintf(" (%d objects in this file: %s)", len(objects), listObjects(objects))
			}
			if _, err := fmt.Fprintf(w, "::warning %s::%s\n", githubProperties(result.File, result.Line, warningTitle), githubData(text)); err != nil {
				return err
			}
		}
	}
	_, err := fmt.Fprintln(w, r.Summary)
	return err
}

// listedObjects is how many objects a shared warning names before it only counts the rest.
const listedObjects = 5

func listObjects(results []Result) string {
	var names []string
	for i, result := range results {
		if i == listedObjects {
			names = append(names, fmt.Sprintf("and %d more", len(results)-listedObjects))
			break
		}
		name := result.Kind + " " + result.objectName()
		if result.Line > 0 {
			name += fmt.Sprintf(" at line %d", result.Line)
		}
		names = append(names, name)
	}
	return strings.Join(names, ", ")
}

func githubProperties(file string, line int, title string) string {
	properties := []string{}
	if file != "" && file != "stdin" {
		properties = append(properties, "file="+githubProperty(file))
		if line > 0 {
			properties = append(properties, fmt.Sprintf("line=%d", line))
		}
	}
	properties = append(properties, "title="+githubProperty(title))
	return strings.Join(properties, ",")
}

// githubData and githubProperty escape as GitHub's workflow commands require.
var (
	githubDataEscaper     = strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A")
	githubPropertyEscaper = strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C")
)

func githubData(text string) string     { return githubDataEscaper.Replace(text) }
func githubProperty(text string) string { return githubPropertyEscaper.Replace(text) }

type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	ClassName string        `xml:"classname,attr"`
	File      string        `xml:"file,attr,omitempty"`
	Line      int           `xml:"line,attr,omitempty"`
	Failure   *junitFailure `xml:"failure,omitempty"`
	SystemOut string        `xml:"system-out,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit prints a JUnit XML report, which GitLab, Jenkins and most CI systems show natively: one
// test case per object, failed when it is denied, at the line of its first violation's field.
func (r Report) WriteJUnit(w io.Writer) error {
	suite := junitSuite{Name: "backupguard validate"}
	for _, result := range r.Results {
		testCase := junitCase{Name: fmt.Sprintf("%s %s", result.Kind, result.objectName()), ClassName: result.Source}
		if result.File != "stdin" {
			testCase.File, testCase.Line = result.File, result.Line
			if len(result.Violations) > 0 && result.Violations[0].Line > 0 {
				testCase.Line = result.Violations[0].Line
			}
		}
		if !result.Allowed {
			var lines []string
			for _, violation := range result.Violations {
				lines = append(lines, violation.Field+": "+violation.Message)
			}
			testCase.Failure = &junitFailure{Message: fmt.Sprintf("%d violation(s)", len(result.Violations)), Type: "denied", Text: strings.Join(lines, "\n")}
			suite.Failures++
		}
		if len(result.Warnings) > 0 {
			testCase.SystemOut = "warning: " + strings.Join(result.Warnings, "\nwarning: ")
		}
		suite.Cases = append(suite.Cases, testCase)
		suite.Tests++
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	encoder := xml.NewEncoder(w)
	encoder.Indent("", "  ")
	if err := encoder.Encode(junitSuites{Tests: suite.Tests, Failures: suite.Failures, Suites: []junitSuite{suite}}); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
