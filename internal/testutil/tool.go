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

// Starter is a component a test configures, starts and closes: a Server,
// a Relay, a Mediator.
type Starter interface {
	Start() error
	Close()
}

// Start lets mod (when not nil) change v, starts it, failing the test if
// it does not start, and closes it when the test ends.
func Start[T Starter](t testing.TB, v T, mod func(T)) {
	t.Helper()
	if mod != nil {
		mod(v)
	}
	if err := v.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
}
