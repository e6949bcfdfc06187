package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// docFiles are the pages whose commands must run as written.
func docFiles(t *testing.T, root string) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{filepath.Join(root, "README.md")}, pages...)
}

// docCommand is one `backupguard ...` line of a sh or console block, and the output shown after it
// (console blocks, whose commands start with "$ ").
type docCommand struct {
	page, line string
	args       []string
	output     string
	hasOutput  bool
}

var docBlock = regexp.MustCompile("(?s)```(sh|console)\n(.*?)```")

func docCommands(t *testing.T, root string) []docCommand {
	t.Helper()
	var commands []docCommand
	for _, page := range docFiles(t, root) {
		data, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, block := range docBlock.FindAllStringSubmatch(string(data), -1) {
			lines := strings.Split(strings.TrimSuffix(block[2], "\n"), "\n")
			for i, line := range lines {
				text := strings.TrimPrefix(line, "$ ")
				if !strings.HasPrefix(text, "backupguard ") {
					continue
				}
				command := docCommand{page: filepath.Base(page), line: text}
				if code, _, found := strings.Cut(text, " # "); found {
					text = code
				}
				fields, err := splitShellWords(strings.TrimPrefix(text, "backupguard "))
				if err != nil {
					t.Fatalf("%s: %q: %v", page, line, err)
				}
				command.args = fields
				if block[1] == "console" && strings.HasPrefix(line, "$ ") {
					var output []string
					for _, next := range lines[i+1:] {
						if strings.HasPrefix(next, "$ ") {
							break
						}
						output = append(output, next)
					}
					command.output, command.hasOutput = strings.Join(output, "\n")+"\n", true
				}
				commands = append(commands, command)
			}
		}
	}
	return commands
}

// splitShellWords splits a command line as sh does for the quoting the docs use: double and single
// quotes, no expansions.
func splitShellWords(line string) ([]string, error) {
	var words []string
	var word strings.Builder
	inWord, quote := false, rune(0)
	for _, r := range line {
		switch {
		case quote != 0 && r == quote:
			quote = 0
		case quote != 0:
			word.WriteRune(r)
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t':
			if inWord {
				words = append(words, word.String())
				word.Reset()
				inWord = false
			}
		default:
			word.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, os.ErrInvalid
	}
	if inWord {
		words = append(words, word.String())
	}
	return words, nil
}

// needsCluster tells the commands that talk to a cluster; they are checked by their flags.
func needsCluster(args []string) bool {
	if len(args) == 0 {
		return false
	}
	switch args[0] {
	case "serve":
		return true
	case "window":
		return !strings.Contains(strings.Join(args, " "), "--config")
	}
	return false
}

// TestDocsCommandsRunAsWritten runs every `backupguard` command the README and docs/ show, as written,
// from the repository's root. Commands that need no cluster run for real and must not fail on their
// usage or input (exit 2); where a console block shows their output, it must be the output. Commands
// that need a cluster are checked for their command and flags: cobra refuses an unknown flag before it
// prints the help that --help asks for.
func TestDocsCommandsRunAsWritten(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	commands := docCommands(t, root)
	if len(commands) < 5 {
		t.Fatalf("found only %d commands in the docs; the scan is broken", len(commands))
	}
	for _, command := range commands {
		t.Run(command.page+": "+command.line, func(t *testing.T) {
			if needsCluster(command.args) {
				stdout, stderr, code := runBinary(t, root, append(command.args, "--help"), "")
				if code != 0 || stderr != "" || !strings.Contains(stdout, "Usage:") {
					t.Errorf("exit code %d, stderr %q", code, stderr)
				}
				return
			}
			stdout, stderr, code := runBinary(t, root, command.args, "")
			if code == exitUsage {
				t.Errorf("exit code 2 (usage or input): %s", stderr)
			}
			if command.hasOutput {
				if diff := cmp.Diff(command.output, stdout); diff != "" {
					t.Errorf("stdout (-docs +got):\n%s", diff)
				}
			}
		})
	}
}

// TestDocsValidateSynopsisMatchesHelp compares the synopsis of validate in docs/ci.md with validate
// --help: its usage line and its flags (but -h).
func TestDocsValidateSynopsisMatchesHelp(t *testing.T) {
	page, err := os.ReadFile(filepath.Join("..", "..", "docs", "ci.md"))
	if err != nil {
		t.Fatal(err)
	}
	const start = "```text\nbackupguard validate "
	_, synopsis, found := strings.Cut(string(page), start)
	if !found {
		t.Fatalf("docs/ci.md has no synopsis starting %q", start)
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
		t.Errorf("docs/ci.md synopsis (-help +docs):\n%s", diff)
	}
}
