package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var (
	buildOnce   sync.Once
	builtBinary string
	buildErr    error
)

// backupguardBinary builds the real backupguard binary once per test run, as a user gets it from
// go build, so the command-line tests see exactly what a shell sees.
func backupguardBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "backupguard-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBinary = filepath.Join(dir, "backupguard")
		out, err := exec.Command("go", "build", "-buildvcs=false", "-o", builtBinary, ".").CombinedOutput()
		if err != nil {
			buildErr = errors.New("go build: " + err.Error() + "\n" + string(out))
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBinary
}

// runBinary runs the real binary with args and stdin, in dir when it is not empty, and returns its
// stdout, stderr and exit code.
func runBinary(t *testing.T, dir string, args []string, stdin string, env ...string) (string, string, int) {
	t.Helper()
	command := exec.Command(backupguardBinary(t), args...)
	command.Dir = dir
	command.Stdin = strings.NewReader(stdin)
	command.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	command.Stdout, command.Stderr = &stdout, &stderr
	err := command.Run()
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		return stdout.String(), stderr.String(), exitErr.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), 0
}
