package cli_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/cli/ocmctl"
	"github.com/ocm-overlay/ocm/internal/cli/ocmprobe"
	"github.com/ocm-overlay/ocm/internal/cli/ocmrelay"
	"github.com/ocm-overlay/ocm/internal/cli/ocmserver"
	"github.com/ocm-overlay/ocm/internal/cli/rtpfanout"
	"github.com/ocm-overlay/ocm/internal/cli/rtspmediator"
)

var tools = map[string]func() *cobra.Command{
	"ocm-ctl":       ocmctl.NewCommand,
	"ocm-probe":     ocmprobe.NewCommand,
	"ocm-relay":     ocmrelay.NewCommand,
	"ocm-server":    ocmserver.NewCommand,
	"rtp-fanout":    rtpfanout.NewCommand,
	"rtsp-mediator": rtspmediator.NewCommand,
}

func run(newCmd func() *cobra.Command, args ...string) (code int, stdout, stderr string) {
	cmd := newCmd()
	var out, errb bytes.Buffer
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	code = cli.Main(cmd)
	return code, out.String(), errb.String()
}

// Every tool answers --version with its name and the build's version.
func TestVersion(t *testing.T) {
	v := cli.Version()
	if v == "" {
		t.Fatal("empty version")
	}
	for name, newCmd := range tools {
		code, out, stderr := run(newCmd, "--version")
		if want := name + " " + v + "\n"; code != 0 || out != want || stderr != "" {
			t.Errorf("%s --version: exit %d, stdout %q (want %q), stderr %q", name, code, out, want, stderr)
		}
	}
}

// An error is printed once, by Main, with the tool's name (ocm-server
// printed cobra's "Error: ..." and then its own line).
func TestErrorPrintedOnce(t *testing.T) {
	for name, newCmd := range tools {
		code, out, stderr := run(newCmd, "--no-such-flag")
		if code != 1 || out != "" || strings.Count(stderr, "no-such-flag") != 1 ||
			!strings.HasPrefix(stderr, name+": ") {
			t.Errorf("%s --no-such-flag: exit %d, stdout %q, stderr %q: want one line %q", name, code, out, stderr, name+": unknown flag: --no-such-flag")
		}
	}
}
