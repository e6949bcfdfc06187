package offline

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// WriteGitHub prints GitHub Actions workflow commands: an error annotation per violation and a warning
// per warning, at the file and line of the object, so the pull request shows them on the diff.
func (r Report) WriteGitHub(w io.Writer) error {
	for _, result := range r.Results {
		title := fmt.Sprintf("backupguard: %s %s", result.Kind, result.objectName())
		for _, violation := range result.Violations {
			if _, err := fmt.Fprintf(w, "::error %s::%s\n", githubProperties(result, title), githubData(violation.Field+": "+violation.Message)); err != nil {
				return err
			}
		}
		for _, warning := range result.Warnings {
			if _, err := fmt.Fprintf(w, "::warning %s::%s\n", githubProperties(result, title), githubData(warning)); err != nil {
				return err
			}
		}
	}
	_, err := fmt.Fprintln(w, r.Summary)
	return err
}

func githubProperties(result Result, title string) string {
	properties := []string{}
	if result.File != "" && result.File != "stdin" {
		properties = append(properties, "file="+githubProperty(result.File))
		if result.Line > 0 {
			properties = append(properties, fmt.Sprintf("line=%d", result.Line))
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
// test case per object, failed when it is denied.
func (r Report) WriteJUnit(w io.Writer) error {
	suite := junitSuite{Name: "backupguard validate"}
	for _, result := range r.Results {
		testCase := junitCase{Name: fmt.Sprintf("%s %s", result.Kind, result.objectName()), ClassName: result.Source}
		if result.File != "stdin" {
			testCase.File, testCase.Line = result.File, result.Line
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
