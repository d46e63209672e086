package lab

import (
	"os/exec"
	"strings"
	"testing"
)

// TestLeafPackages pins the dependency shape docs/ARCHITECTURE.md
// describes: the stream's identity, the allow list and the event and
// fanout JSON shapes import only the standard library (and each other),
// and the relay does not pull in an RTSP stack. A change that makes the
// relay import the mediator (it did, for the URL parser, with 31
// gortsplib packages) fails here.
func TestLeafPackages(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	const mod = "github.com/ocm-overlay/ocm/internal/"
	deps := func(pkg string) []string {
		t.Helper()
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", mod+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	for pkg, allowed := range map[string][]string{
		"streamurl": {"streamurl"},
		"allow":     {"allow", "streamurl"},
		"fanoutapi": {"fanoutapi"},
		"event":     {"event", "fanoutapi"},
		"api":       {"api"},
	} {
		for _, d := range deps(pkg) {
			ok := false
			for _, a := range allowed {
				ok = ok || d == mod+a
			}
			if !ok {
				t.Errorf("%s imports %s: it must stay a leaf (standard library and %v only)", pkg, d, allowed)
			}
		}
	}
	for _, d := range deps("relay") {
		if strings.Contains(d, "gortsplib") || d == mod+"mediator" {
			t.Errorf("the relay imports %s: it needs no RTSP stack", d)
		}
	}
}
