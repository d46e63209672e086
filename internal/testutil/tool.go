package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// RequireTool returns the path of an external program the test needs,
// skipping the test when it is missing, except in CI (CI set) where a
// missing program is a broken setup and fails the test.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not on PATH (required when CI is set; .ci/run installs it)", name)
		}
		t.Skipf("%s not on PATH: skipping", name)
	}
	return p
}
