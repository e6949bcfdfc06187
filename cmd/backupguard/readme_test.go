package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestREADMEWindowStatusExampleRuns runs the README's offline window status example as written, from
// the repository's root, and compares its output with the README's.
func TestREADMEWindowStatusExampleRuns(t *testing.T) {
	testREADMEExample(t, "$ backupguard window status --config ")
}

// TestREADMECoverageExampleRuns does the same with the README's coverage run.
func TestREADMECoverageExampleRuns(t *testing.T) {
	testREADMEExample(t, "$ backupguard coverage --config ")
}

func testREADMEExample(t *testing.T, prompt string) {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, example, found := strings.Cut(string(readme), prompt)
	if !found {
		t.Fatalf("README.md has no example starting %q", prompt)
	}
	example, _, _ = strings.Cut(example, "```")
	commandLine, wantStdout, _ := strings.Cut(prompt+example, "\n")
	args := strings.Fields(strings.TrimPrefix(commandLine, "$ backupguard "))
	stdout, stderr, code := runBinary(t, root, args, "")
	if code != 0 || stderr != "" {
		t.Errorf("%s: exit code %d, stderr %q", commandLine, code, stderr)
	}
	if diff := cmp.Diff(wantStdout, stdout); diff != "" {
		t.Errorf("%s: stdout (-README +got):\n%s", commandLine, diff)
	}
}

// TestREADMEValidateSynopsisMatchesHelp compares the README's synopsis of validate with validate
// --help: its usage line and its flags (but -h).
func TestREADMEValidateSynopsisMatchesHelp(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	const start = "```text\nbackupguard validate "
	_, synopsis, found := strings.Cut(string(readme), start)
	if !found {
		t.Fatalf("README.md has no synopsis starting %q", start)
	}
	synopsis, _, _ = strings.Cut("backupguard validate "+synopsis, "```")

	help := help(t, "validate")
	_, usage, _ := strings.Cut(help, "Usage:\n  ")
	usageLine, _, _ := strings.Cut(usage, "\n")
	_, flags, _ := strings.Cut(help, "Flags:\n")
	var want strings.Builder
	want.WriteString(usageLine + "\n\n")
	for line := range strings.Lines(flags) {
		if !strings.Contains(line, "--help") {
			want.WriteString(line)
		}
	}
	if diff := cmp.Diff(want.String(), synopsis); diff != "" {
		t.Errorf("README synopsis (-help +README):\n%s", diff)
	}
}
