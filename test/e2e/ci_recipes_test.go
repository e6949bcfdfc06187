package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/backupguard/backupguard/test/cluster"
)

// runRecipe runs a command line from a shipped CI recipe, as the CI system would: a shell in a
// checkout of the repository, with backupguard and kubectl on the PATH.
func runRecipe(t *testing.T, commandLine string, args ...string) (string, int, string) {
	t.Helper()
	checkout := t.TempDir()
	if err := os.Symlink(filepath.Join(cluster.RepoRoot(), "manifests"), filepath.Join(checkout, "manifests")); err != nil {
		t.Fatal(err)
	}
	command := exec.Command("bash", append([]string{"-c", commandLine + ` "$@"`, "recipe"}, args...)...)
	command.Dir = checkout
	command.Env = append(os.Environ(), "PATH="+filepath.Dir(binary)+":"+filepath.Dir(testCluster.Kubectl)+":"+os.Getenv("PATH"))
	out, err := command.Output()
	code := 0
	if exitErr, ok := err.(*exec.ExitError); ok {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code, checkout
}

func readRecipe(t *testing.T, name string, into any) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(cluster.RepoRoot(), "manifests", "examples", "ci", name))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		t.Fatal(err)
	}
}

const recipeDenial = "spec.retain: Invalid value: 4: must be greater than parameters[full-backup-interval] (4), so that the 4 backups kept always include a full backup (every block uploaded afresh, which also replaces a damaged block in the store); set retain to at least 5"

func TestGitHubActionsRecipe(t *testing.T) {
	var workflow struct {
		Jobs map[string]struct {
			Steps []struct{ Name, Run string }
		}
	}
	readRecipe(t, "github-actions.yaml", &workflow)
	var run string
	for _, step := range workflow.Jobs["validate"].Steps {
		if step.Name == "Validate the manifests" {
			run = step.Run
		}
	}
	out, code, _ := runRecipe(t, run)
	title := "title=backupguard%3A RecurringJob longhorn-system/"
	file := "file=manifests/examples/ci/tree/recurringjobs.yaml"
	// The denial at the line of spec.retain; the warning both jobs get once, with the count.
	want := "::warning " + file + ",line=1,title=backupguard%3A 2 objects::" + detachedWarningText +
		" (2 objects in this file: RecurringJob longhorn-system/nightly at line 1, RecurringJob longhorn-system/weekly at line 14)\n" +
		"::error " + file + ",line=22," + title + "weekly::" + recipeDenial + "\n" +
		"2 checked, 1 denied, 0 mutated, 1 skipped\n"
	if code != 1 {
		t.Errorf("exit status %d, want 1 so the pull request fails", code)
	}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
}

func TestGitLabCIRecipe(t *testing.T) {
	var pipeline map[string]struct{ Script []string }
	readRecipe(t, "gitlab-ci.yml", &pipeline)
	var script string
	for _, line := range pipeline["backupguard"].Script {
		if strings.Contains(line, "backupguard validate") {
			script = line
		}
	}
	_, code, checkout := runRecipe(t, script)
	if code != 1 {
		t.Errorf("exit status %d, want 1 so the pipeline fails", code)
	}
	report, err := os.ReadFile(filepath.Join(checkout, "backupguard.xml"))
	if err != nil {
		t.Fatal(err)
	}
	want := `<?xml version="1.0" encoding="UTF-8"?>
<testsuites tests="2" failures="1">
  <testsuite name="backupguard validate" tests="2" failures="1">
    <testcase name="RecurringJob longhorn-system/nightly" classname="stdin#1">
      <system-out>warning: ` + detachedWarningText + `</system-out>
    </testcase>
    <testcase name="RecurringJob longhorn-system/weekly" classname="stdin#2">
      <failure message="1 violation(s)" type="denied">` + recipeDenial + `</failure>
      <system-out>warning: ` + detachedWarningText + `</system-out>
    </testcase>
  </testsuite>
</testsuites>
`
	if diff := cmp.Diff(want, string(report)); diff != "" {
		t.Errorf("JUnit report (-want +got):\n%s", diff)
	}
}

func TestPreCommitRecipe(t *testing.T) {
	var config struct {
		Repos []struct {
			Hooks []struct{ Entry, Files string }
		}
	}
	readRecipe(t, "pre-commit-config.yaml", &config)
	hook := config.Repos[0].Hooks[0]
	// pre-commit passes the staged files that match the pattern.
	pattern := regexp.MustCompile(hook.Files)
	var staged []string
	for _, candidate := range []string{"README.md", "manifests/examples/ci/tree/kustomization.yaml", "manifests/examples/ci/tree/recurringjobs.yaml"} {
		if pattern.MatchString(candidate) {
			staged = append(staged, candidate)
		}
	}
	// The hook's entry as it is, with the staged files, and a fixed --now so the run times are stable.
	out, code, _ := runRecipe(t, hook.Entry, append(staged, "--now", "2026-11-21T12:00:00Z")...)
	want := "RecurringJob longhorn-system/nightly (manifests/examples/ci/tree/recurringjobs.yaml#1): allowed\n" +
		"  warning: " + detachedWarningText + "\n" +
		"  next runs: Sun 2026-11-22 02:00 UTC, Mon 2026-11-23 02:00 UTC, Tue 2026-11-24 02:00 UTC\n" +
		"RecurringJob longhorn-system/weekly (manifests/examples/ci/tree/recurringjobs.yaml#2): denied\n" +
		"  " + recipeDenial + "\n" +
		"  warning: " + detachedWarningText + "\n" +
		"  next runs: Sun 2026-11-22 03:00 UTC, Sun 2026-11-29 03:00 UTC, Sun 2026-12-06 03:00 UTC\n" +
		"2 checked, 1 denied, 0 mutated, 1 skipped\n"
	if code != 1 {
		t.Errorf("exit status %d, want 1 so the commit is refused", code)
	}
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("hook output (-want +got):\n%s", diff)
	}
}

const detachedWarningText = "detached volumes will be skipped: the Longhorn setting allow-recurring-job-while-volume-detached is false"
