package ocmrelay

import (
	"bytes"
	"strings"
	"testing"

	"github.com/ocm-overlay/ocm/internal/cli"
)

func run(args ...string) (code int, stdout, stderr string) {
	cmd := NewCommand()
	var out, errb bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	return cli.Main(cmd), out.String(), errb.String()
}

// A malformed --server list is refused before anything starts, with the
// entry at fault named.
func TestServerListErrors(t *testing.T) {
	for _, tc := range []struct{ list, want string }{
		{"127.0.0.1:1,,127.0.0.1:2", "entry 2 is empty"},
		{"127.0.0.1:1,nohost", `entry 2, "nohost"`},
		{"127.0.0.1:1,127.0.0.1:1", "entry 2, 127.0.0.1:1, is listed twice"},
	} {
		code, out, stderr := run("--server", tc.list, "--control", "127.0.0.1:0", "--probe", "127.0.0.1:0")
		if code != 1 || out != "" || !strings.Contains(stderr, "--server") || !strings.Contains(stderr, tc.want) {
			t.Errorf("--server %s: exit %d, stdout %q, stderr %q; want exit 1 naming %q", tc.list, code, out, stderr, tc.want)
		}
	}
}

// --help explains failover and shows a list.
func TestHelpShowsServerList(t *testing.T) {
	code, out, _ := run("--help")
	if code != 0 || !strings.Contains(out, "Failover") || !strings.Contains(out, "--server ms1.example.org:7070,ms2.example.org:7070") {
		t.Errorf("--help: exit %d, output lacks the failover text or example:\n%s", code, out)
	}
}

// A negative --improve-every is refused before anything starts, saying
// what to give instead; --help shows the flag with an example.
func TestImproveEveryFlag(t *testing.T) {
	code, out, stderr := run("--improve-every", "-1s", "--control", "127.0.0.1:0", "--probe", "127.0.0.1:0")
	if code != 1 || out != "" || !strings.Contains(stderr, "--improve-every -1s is negative") || !strings.Contains(stderr, "0 to never") {
		t.Errorf("--improve-every -1s: exit %d, stdout %q, stderr %q; want exit 1 naming the flag", code, out, stderr)
	}
	code, out, _ = run("--help")
	if code != 0 || !strings.Contains(out, "--improve-every duration") || !strings.Contains(out, "--improve-every 10s") || !strings.Contains(out, "0: never") {
		t.Errorf("--help: exit %d, output lacks --improve-every or its example:\n%s", code, out)
	}
}
