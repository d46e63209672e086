package ocmctl

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/server"
	"github.com/ocm-overlay/ocm/internal/testutil"
)

// ocm-ctl tree -o dot draws every member and every parent-child edge of
// every stream, marks the states, and Graphviz's dot reads it.
func TestCtlTreeDot(t *testing.T) {
	fake := startFakeAPI(t)
	out, _, err := runCtl(t, nil, "--server", fake.addr(), "tree", "-o", "dot")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out, "digraph ocm {") {
		t.Fatalf("not a digraph:\n%s", out)
	}
	for i, tr := range ctlTrees() {
		prefix := `"s` + string(rune('0'+i)) + `/`
		for _, c := range tr.Origin.Children {
			if e := prefix + `origin" -> ` + prefix + c + `"`; !strings.Contains(out, e) {
				t.Errorf("no edge %s", e)
			}
		}
		for _, m := range tr.Nodes {
			if !strings.Contains(out, "\t\t"+prefix+m.Node+`" [label="`+m.Node+`\n`) {
				t.Errorf("no node %s%s", prefix, m.Node)
			}
			for _, c := range m.Children {
				if e := prefix + m.Node + `" -> ` + prefix + c + `"`; !strings.Contains(out, e) {
					t.Errorf("no edge %s", e)
				}
			}
		}
	}
	for _, mark := range []string{`color="red"`, `color="orange"`, `style="dashed"`, `penwidth=2`} {
		if !strings.Contains(out, mark) {
			t.Errorf("no node marked %s", mark)
		}
	}
	// -o dot is for tree only.
	if _, _, err := runCtl(t, nil, "--server", fake.addr(), "nodes", "-o", "dot"); err == nil || !strings.Contains(err.Error(), "want table or json") {
		t.Errorf("nodes -o dot: %v", err)
	}

	dot := testutil.RequireTool(t, "dot")
	cmd := exec.Command(dot, "-Tsvg")
	cmd.Stdin = strings.NewReader(out)
	var svg, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &svg, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("dot -Tsvg: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(svg.String(), "<svg") || !strings.Contains(svg.String(), "orphan") {
		t.Errorf("dot drew no tree: %.300s", svg.String())
	}
}

// Completion offers what the server has now: node ids, stream URLs, and
// the fixed values (policies, -o).
func TestCtlCompletion(t *testing.T) {
	fake := startFakeAPI(t)
	complete := func(args ...string) []string {
		t.Helper()
		out, _, err := runCtl(t, nil, append([]string{"--server", fake.addr(), "__complete"}, args...)...)
		if err != nil {
			t.Fatalf("__complete %v: %v", args, err)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return lines[:len(lines)-1] // the directive
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"kick", ""}, "a p"},
		{[]string{"drain", "a"}, "a"},
		{[]string{"kick", "a", ""}, ""},
		{[]string{"reconnect", "a", "--to", ""}, "origin a p"},
		{[]string{"reconnect", "a", "--stream", ""}, ctlTestStream + " " + ctlTestOther},
		{[]string{"tree", ""}, ctlTestStream + " " + ctlTestOther},
		{[]string{"policy", ""}, "repair drop reconnect gradual"},
		{[]string{"policy", "g"}, "gradual"},
		{[]string{"tree", "-o", ""}, "table json dot"},
		{[]string{"nodes", "-o", ""}, "table json"},
	} {
		if got := strings.Join(complete(tc.args...), " "); got != tc.want {
			t.Errorf("complete %q: %q, want %q", tc.args, got, tc.want)
		}
	}
}

// Against a server with a token, actions need --token (or $OCM_TOKEN)
// and the refusal says how to give it; reads stay open.
func TestCtlToken(t *testing.T) {
	srv := &server.Server{Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", Heartbeat: time.Hour, Token: "s3cret"}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	t.Setenv(ctlTokenEnv, "")
	if _, _, err := runCtl(t, nil, "--server", srv.HTTPAddr(), "policy"); err != nil {
		t.Errorf("a read without a token: %v", err)
	}
	_, _, err := runCtl(t, nil, "--server", srv.HTTPAddr(), "policy", "drop")
	if err == nil || !strings.Contains(err.Error(), "--token") || !strings.Contains(err.Error(), "401") {
		t.Errorf("an action without a token: %v", err)
	}
	if out, _, err := runCtl(t, nil, "--server", srv.HTTPAddr(), "--token", "s3cret", "policy", "drop"); err != nil || !strings.Contains(out, "to drop") {
		t.Errorf("--token: %v\n%s", err, out)
	}
	t.Setenv(ctlTokenEnv, "s3cret")
	if out, _, err := runCtl(t, nil, "--server", srv.HTTPAddr(), "policy", "gradual"); err != nil || !strings.Contains(out, "to gradual") {
		t.Errorf("$%s: %v\n%s", ctlTokenEnv, err, out)
	}
}
