package ocmctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/server"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

const (
	ctlTestStream = "rtsp://ms:554/live"
	ctlTestOther  = "rtsp://ms:554/other"
)

// ctlTestNow is the clock of the table tests.
var ctlTestNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// ctlTrees are the canned trees: every state the drawing shows.
func ctlTrees() []api.Tree {
	return []api.Tree{
		{
			Stream: ctlTestStream,
			Origin: api.TreeOrigin{Children: []string{"a", "b"}, Capacity: 4},
			Depth:  2,
			Nodes: []api.Member{
				{Node: "a", Parent: wire.OriginID, Level: 1, Children: []string{"c", "d"}, Clients: 2, Capacity: 4,
					Attached: true, Readers: 3, Bitrate: 1.5e6},
				{Node: "b", Parent: wire.OriginID, Level: 1, Children: []string{}, Clients: 1, Capacity: 2,
					Attached: true, Leaving: true, Readers: 1, Loss: 0.012, Bitrate: 800e3},
				{Node: "c", Parent: "a", Level: 2, Children: []string{}, Capacity: 2, Attached: true,
					Reserved: "b", Readers: 1, Bitrate: 1.49e6},
				{Node: "d", Parent: "a", Level: 2, Children: []string{}, Capacity: 2, Attached: true,
					PendingParent: "b", Readers: 2, Loss: 0.25, Bitrate: 999},
				{Node: "e", Level: 1, Children: []string{"f"}, Clients: 1, Capacity: 2, PendingParent: "a", Readers: 1},
				{Node: "f", Parent: "e", Level: 2, Children: []string{}, Capacity: 2},
			},
		},
		{
			Stream: ctlTestOther,
			Origin: api.TreeOrigin{Children: []string{}, Capacity: 4},
			Nodes:  []api.Member{},
		},
	}
}

const ctlTreesWant = `rtsp://ms:554/live  (6 relays: 4 attached, 2 detached, 1 orphan; depth 2)
NODE         LEVEL   CHILDREN       READERS   LOSS    BITRATE      STATE
origin       0       2/4            -         -       -
|-- a        1       2/4            3         0.0%    1.50 Mb/s
|   |-- c    2       0/2            1         0.0%    1.49 Mb/s    handover to b
|   ` + "`" + `-- d    2       0/2            2         25.0%   999 b/s      pending b
` + "`" + `-- b        1       1/2 (0 here)   1         1.2%    800.0 kb/s   leaving
(detached)
` + "`" + `-- e        1       1/2            1         0.0%    0 b/s        orphan, pending a
    ` + "`" + `-- f    2       0/2            0         0.0%    0 b/s

rtsp://ms:554/other  (0 relays; depth 0)
NODE     LEVEL   CHILDREN   READERS   LOSS   BITRATE   STATE
origin   0       0/4        -         -      -
`

func ctlNodes() []api.Node {
	report := ctlTestNow.Add(-3 * time.Second)
	return []api.Node{
		{ID: "a", RTSP: "10.0.0.5:8554", Probe: "10.0.0.5:7072", Willing: true,
			Capacity: 4, Cores: 8, Children: 2, CPU: 0.42, Clients: 3, LastReport: &report, Streams: []string{ctlTestStream},
			Remote: "10.0.0.5:40000", Connected: ctlTestNow.Add(-(2*time.Hour + 5*time.Minute)), LastSeen: ctlTestNow.Add(-time.Second)},
		{ID: "p", Capacity: 0, Streams: []string{},
			Connected: ctlTestNow.Add(-90 * time.Second), LastSeen: ctlTestNow},
	}
}

const ctlNodesWant = `NODE   WILLING   CHILDREN   CLIENTS   CPU   CORES   STREAMS   RTSP            REMOTE           UP      SEEN   REPORT
a      yes       2/4        3         42%   8       1         10.0.0.5:8554   10.0.0.5:40000   2h05m   1s     3s
p      no        0/0        0         0%    -       0         -               -                1m30s   0s     -
`

func ctlStreams() []api.Stream {
	return []api.Stream{
		{Stream: ctlTestStream, Nodes: 6, Attached: 4, Orphans: 1, Pending: 1, Depth: 2, OriginChildren: 2, Origin: "ms:554"},
		{Stream: ctlTestOther, Origin: "ms:554"},
	}
}

const ctlStreamsWant = `STREAM                ORIGIN   NODES   ATTACHED   ORPHANS   PENDING   DEPTH   FROM ORIGIN
rtsp://ms:554/live    ms:554   6       4          1         1         2       2
rtsp://ms:554/other   ms:554   0       0          0         0         0       0
`

// fakeAPI serves canned answers in the shapes of ocm-server's API,
// encoded as the server encodes them, and records the requests.
type fakeAPI struct {
	*httptest.Server
	mu     sync.Mutex
	reqs   []string // "METHOD /path?query"
	policy api.Policy
	fail   int // answer this many requests with 503 first
}

func startFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{policy: api.Policy{Recovery: "repair", HeartbeatMs: 2000, ReportMs: 10000, MaxCandidates: 5,
		OriginCapacity: 4, Displace: 2, ReconnectStepMs: 500, HandoverMs: 2000, OrphanGraceMs: 30000}}
	nodes := map[string]bool{"a": true, "b": true, "c": true, "d": true, "e": true, "f": true}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.reqs = append(f.reqs, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
		failing := f.fail > 0
		f.fail--
		f.mu.Unlock()
		q := r.URL.Query()
		reply := func(status int, v any) {
			var buf bytes.Buffer
			enc := json.NewEncoder(&buf)
			enc.SetEscapeHTML(false)
			enc.SetIndent("", "  ")
			_ = enc.Encode(v)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write(buf.Bytes())
		}
		fail := func(status int, format string, a ...any) {
			reply(status, map[string]string{"error": fmt.Sprintf(format, a...)})
		}
		if failing {
			fail(http.StatusServiceUnavailable, "server closed")
			return
		}
		node := q.Get("node")
		if r.Method == http.MethodPost && r.URL.Path != "/api/v1/policy" && !nodes[node] {
			if node == "" {
				fail(http.StatusBadRequest, "node= is required")
			} else {
				fail(http.StatusNotFound, "no node %q", node)
			}
			return
		}
		switch r.Method + " " + r.URL.Path {
		case "GET /api/v1/tree":
			s := q.Get("stream")
			if s == "" {
				reply(200, ctlTrees())
				return
			}
			for _, t := range ctlTrees() {
				if t.Stream == s {
					reply(200, t)
					return
				}
			}
			fail(http.StatusNotFound, "no tree for stream %q", s)
		case "GET /api/v1/nodes":
			reply(200, ctlNodes())
		case "GET /api/v1/streams":
			reply(200, ctlStreams())
		case "GET /api/v1/policy":
			f.mu.Lock()
			p := f.policy
			f.mu.Unlock()
			reply(200, p)
		case "POST /api/v1/policy":
			p, err := tree.ParsePolicy(q.Get("recovery"))
			if err != nil {
				fail(http.StatusBadRequest, "%v", err)
				return
			}
			f.mu.Lock()
			f.policy.Recovery = string(p)
			pol := f.policy
			f.mu.Unlock()
			reply(200, pol)
		case "POST /api/v1/reconnect":
			out := api.Sent{Sent: []api.Target{{Node: node, Stream: ctlTestStream, Type: wire.TypeReconnect, Target: q.Get("to")}}}
			if q.Get("subtree") == "1" {
				out.Sent = append(out.Sent, api.Target{Node: "c", Stream: ctlTestStream, Type: wire.TypeReconnect})
			}
			if node == "f" {
				out.Sent = []api.Target{}
			}
			reply(200, out)
		case "POST /api/v1/kick":
			reply(200, api.Sent{Sent: []api.Target{{Node: node, Type: wire.TypeError}}})
		case "POST /api/v1/drain":
			reply(200, api.Sent{Sent: []api.Target{{Node: node, Type: wire.TypeDrain},
				{Node: "c", Stream: ctlTestStream, Type: wire.TypeReconnect, Target: "b"}}})
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) addr() string { return strings.TrimPrefix(f.URL, "http://") }

func (f *fakeAPI) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := append([]string(nil), f.reqs...)
	f.reqs = nil
	return out
}

// runCtl runs ocm-ctl in-process with args and returns stdout, stderr
// and the error Execute returned.
func runCtl(t *testing.T, ctx context.Context, args ...string) (string, string, error) {
	t.Helper()
	return runCtlWith(t, ctx, nil, args...)
}

func runCtlWith(t *testing.T, ctx context.Context, mod func(*ctlOptions), args ...string) (string, string, error) {
	t.Helper()
	cmd := newCtlForTest(mod)
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetIn(strings.NewReader(""))
	cmd.SetArgs(args)
	if ctx == nil {
		ctx = context.Background()
	}
	err := cmd.ExecuteContext(ctx)
	return out.String(), errb.String(), err
}

// newCtlForTest is ocm-ctl with the table tests' clock.
func newCtlForTest(mod func(*ctlOptions)) *cobra.Command {
	o := &ctlOptions{now: func() time.Time { return ctlTestNow }, isTerminal: isTerminal}
	if mod != nil {
		mod(o)
	}
	return newCtlCommand(o)
}

func TestCtlTree(t *testing.T) {
	fake := startFakeAPI(t)
	out, _, err := runCtl(t, nil, "--server", fake.addr(), "tree")
	if err != nil {
		t.Fatal(err)
	}
	if out != ctlTreesWant {
		t.Errorf("tree:\n%s\nwant:\n%s", out, ctlTreesWant)
	}
	if got := fake.requests(); !reflect.DeepEqual(got, []string{"GET /api/v1/tree?"}) {
		t.Errorf("requests %q", got)
	}

	// One stream, named as users write it: normalised to the tree's key.
	for _, s := range []string{"rtsp://ms:554/other", "rtsp://MS/other", "rtsp://localhost:8554/other?ms", "rtsp://ms/other/"} {
		out, _, err = runCtl(t, nil, "--server", fake.addr(), "tree", s)
		if err != nil {
			t.Fatalf("%s: %v", s, err)
		}
		if want := ctlTreesWant[strings.Index(ctlTreesWant, "rtsp://ms:554/other"):]; out != want {
			t.Errorf("tree %s:\n%s\nwant:\n%s", s, out, want)
		}
		if got := fake.requests(); len(got) != 1 || got[0] != "GET /api/v1/tree?stream="+url.QueryEscape(ctlTestOther) {
			t.Errorf("tree %s: requests %q", s, got)
		}
	}

	// An unknown stream: the server's 404 message.
	_, _, err = runCtl(t, nil, "--server", fake.addr(), "tree", "rtsp://ms/nope")
	if err == nil || err.Error() != `no tree for stream "rtsp://ms:554/nope" (404 Not Found)` || !api.IsNotFound(err) {
		t.Errorf("unknown stream: %v", err)
	}
	_, _, err = runCtl(t, nil, "--server", fake.addr(), "tree", "rtsp://ms:99999/live")
	if err == nil || !strings.Contains(err.Error(), "port") {
		t.Errorf("bad stream URL: %v", err)
	}
}

// TestCtlTreeShapes draws the corner cases the server should not produce
// but a drawing must survive.
func TestCtlTreeShapes(t *testing.T) {
	var b bytes.Buffer
	renderTree(&b, api.Tree{
		Stream: ctlTestStream,
		Origin: api.TreeOrigin{Children: []string{"a", "ghost"}, Capacity: 2},
		Nodes: []api.Member{
			{Node: "a", Parent: wire.OriginID, Level: 1, Children: []string{}, Attached: true},
			{Node: "x", Parent: "y", Level: 3, Children: []string{"y"}},
			{Node: "y", Parent: "x", Level: 4, Children: []string{"x"}},
			{Node: "z", Parent: "gone", Level: 2, Children: []string{}},
		},
	})
	want := `rtsp://ms:554/live  (4 relays: 1 attached, 3 detached, 0 orphans; depth 0)
NODE            LEVEL   CHILDREN   READERS   LOSS   BITRATE   STATE
origin          0       2/2        -         -      -
|-- a           1       0/0        0         0.0%   0 b/s
` + "`" + `-- ghost       -       -          -         -      -         not a member
(detached)
` + "`" + `-- z           2       0/0        0         0.0%   0 b/s
(unreachable)
|-- x           3       0/0 (1 here)   0         0.0%   0 b/s
|   ` + "`" + `-- y       4       0/0 (1 here)   0         0.0%   0 b/s
|       ` + "`" + `-- x   -       -          -         -      -         cycle
`
	// Column widths come from the widest cell: compare cell by cell.
	t.Logf("\n%s", b.String())
	if got := ctlCells(b.String()); !reflect.DeepEqual(got, ctlCells(want)) {
		t.Errorf("drawing:\n%s\nwant (modulo padding):\n%s", b.String(), want)
	}
}

// ctlCells splits a drawing into its lines' cells (runs of 3+ spaces
// separate them).
func ctlCells(s string) [][]string {
	var out [][]string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		var cells []string
		for _, c := range strings.Split(l, "   ") {
			if c = strings.TrimSpace(c); c != "" {
				cells = append(cells, c)
			}
		}
		out = append(out, cells)
	}
	return out
}

// ctlPolicyWant is the policy table ocm-ctl prints for the fake API's
// policy with recovery policy recovery.
func ctlPolicyWant(recovery string) string {
	return "recovery           " + recovery + `
heartbeat          2s
report interval    10s
max candidates     5
origin capacity    4
displace           origin and 2 full relays
reconnect step     500ms
handover timeout   2s
orphan grace       30s
`
}

func TestCtlTables(t *testing.T) {
	fake := startFakeAPI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"nodes"}, ctlNodesWant},
		{[]string{"streams"}, ctlStreamsWant},
		{[]string{"policy"}, ctlPolicyWant("repair")},
	} {
		out, _, err := runCtl(t, nil, append([]string{"--server", fake.addr()}, tc.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if out != tc.want {
			t.Errorf("%v:\n%s\nwant:\n%s", tc.args, out, tc.want)
		}
	}
}

// TestCtlJSON checks -o json prints the API's own JSON, one object a line.
func TestCtlJSON(t *testing.T) {
	fake := startFakeAPI(t)
	trees, nodes, streams := ctlTrees(), ctlNodes(), ctlStreams()
	for _, tc := range []struct {
		args []string
		want []any
	}{
		{[]string{"tree"}, []any{trees[0], trees[1]}},
		{[]string{"tree", "rtsp://ms/live"}, []any{trees[0]}},
		{[]string{"nodes"}, []any{nodes[0], nodes[1]}},
		{[]string{"streams"}, []any{streams[0], streams[1]}},
		{[]string{"policy"}, []any{fake.policy}},
		{[]string{"kick", "a"}, []any{api.Sent{Sent: []api.Target{{Node: "a", Type: wire.TypeError}}}}},
		{[]string{"reconnect", "f"}, []any{api.Sent{Sent: []api.Target{}}}},
		{[]string{"watch", "--count", "2", "--interval", "1ms"}, []any{trees[0], trees[1], trees[0], trees[1]}},
	} {
		out, _, err := runCtl(t, nil, append([]string{"--server", fake.addr(), "-o", "json"}, tc.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) != len(tc.want) {
			t.Fatalf("%v: %d lines, want %d:\n%s", tc.args, len(lines), len(tc.want), out)
		}
		for i, l := range lines {
			want, _ := json.Marshal(tc.want[i])
			if l != string(want) {
				t.Errorf("%v line %d:\n%s\nwant\n%s", tc.args, i, l, want)
			}
		}
	}
}

func TestCtlActions(t *testing.T) {
	fake := startFakeAPI(t)
	for _, tc := range []struct {
		args []string
		reqs []string
		want string
	}{
		{[]string{"reconnect", "a"}, []string{"POST /api/v1/reconnect?node=a"}, `reconnect a: 1 message sent
NODE   MESSAGE     STREAM               SWITCH TO
a      reconnect   rtsp://ms:554/live   -
`},
		{[]string{"reconnect", "a", "--subtree", "--stream", "rtsp://MS/live", "--to", "origin"},
			[]string{"POST /api/v1/reconnect?node=a&stream=rtsp%3A%2F%2Fms%3A554%2Flive&subtree=1&to=origin"}, `reconnect a: 2 messages sent
NODE   MESSAGE     STREAM               SWITCH TO
a      reconnect   rtsp://ms:554/live   origin
c      reconnect   rtsp://ms:554/live   -
`},
		{[]string{"reconnect", "f"}, []string{"POST /api/v1/reconnect?node=f"}, "reconnect f: nothing sent: f relays no stream\n"},
		{[]string{"kick", "b"}, []string{"POST /api/v1/kick?node=b"},
			"kicked b: its connection is closed and its subtree recovers as after a failure (see ocm-ctl policy)\n"},
		{[]string{"drain", "a"}, []string{"POST /api/v1/drain?node=a"}, `drain a: 2 messages sent
NODE   MESSAGE     STREAM               SWITCH TO
a      drain       -                    -
c      reconnect   rtsp://ms:554/live   b
`},
		{[]string{"policy", "gradual"}, []string{"GET /api/v1/policy?", "POST /api/v1/policy?recovery=gradual"}, "recovery policy changed from repair to gradual\n\n" + ctlPolicyWant("gradual")},
		{[]string{"policy", "gradual"}, []string{"GET /api/v1/policy?", "POST /api/v1/policy?recovery=gradual"},
			"recovery policy unchanged: already gradual\n"},
	} {
		out, _, err := runCtl(t, nil, append([]string{"--server", fake.addr()}, tc.args...)...)
		if err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if !strings.HasPrefix(out, tc.want) {
			t.Errorf("%v:\n%s\nwant:\n%s", tc.args, out, tc.want)
		}
		if got := fake.requests(); !reflect.DeepEqual(got, tc.reqs) {
			t.Errorf("%v: requests %q, want %q", tc.args, got, tc.reqs)
		}
	}

	// Errors are the server's message with the status, nothing on stdout.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"reconnect", "zz"}, `no node "zz" (404 Not Found)`},
		{[]string{"kick", "zz"}, `no node "zz" (404 Not Found)`},
		{[]string{"drain", "zz"}, `no node "zz" (404 Not Found)`},
		{[]string{"policy", "bogus"}, `unknown recovery policy "bogus" (want repair, drop, reconnect or gradual) (400 Bad Request)`},
	} {
		out, _, err := runCtl(t, nil, append([]string{"--server", fake.addr()}, tc.args...)...)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: error %v, want %s", tc.args, err, tc.want)
		}
		if out != "" {
			t.Errorf("%v: stdout %q", tc.args, out)
		}
	}
}

// TestCtlMain checks what the process prints and returns on errors.
func TestCtlMain(t *testing.T) {
	fake := startFakeAPI(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadAddr := strings.TrimPrefix(dead.URL, "http://")
	dead.Close()
	for _, tc := range []struct {
		args []string
		want string // stderr
	}{
		{[]string{"--server", fake.addr(), "kick", "zz"}, `ocm-ctl: no node "zz" (404 Not Found)` + "\n"},
		{[]string{"--server", deadAddr, "nodes"}, "ocm-ctl: cannot reach ocm-server at " + deadAddr + ": dial tcp " + deadAddr + ": connect: connection refused\n"},
		{[]string{"kick"}, "ocm-ctl: missing arguments: usage: ocm-ctl kick NODE [flags] (see ocm-ctl kick --help)\n"},
		{[]string{"kick", "a", "b"}, "ocm-ctl: too many arguments: usage: ocm-ctl kick NODE [flags] (see ocm-ctl kick --help)\n"},
		{[]string{"-o", "yaml", "nodes"}, `ocm-ctl: -o "yaml": want table or json` + "\n"},
		{[]string{"--server", "nohost", "nodes"}, `ocm-ctl: --server: server "nohost" is not HOST:PORT` + "\n"},
		{[]string{"frobnicate"}, `ocm-ctl: unknown command "frobnicate" for "ocm-ctl"` + "\n"},
	} {
		cmd := NewCommand()
		var out, errb bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&errb)
		cmd.SetArgs(tc.args)
		if code := cli.Main(cmd); code != 1 {
			t.Errorf("%v: exit %d", tc.args, code)
		}
		if errb.String() != tc.want {
			t.Errorf("%v: stderr %q, want %q", tc.args, errb.String(), tc.want)
		}
		if out.Len() != 0 {
			t.Errorf("%v: stdout %q", tc.args, out.String())
		}
	}
}

func TestCtlServerAddress(t *testing.T) {
	fake := startFakeAPI(t)
	// The default, without $OCM_SERVER (url never talks to the server).
	t.Setenv(ctlServerEnv, "")
	var opts *ctlOptions
	keep := func(o *ctlOptions) { opts = o }
	if _, _, err := runCtlWith(t, nil, keep, "url", "live", "ms"); err != nil || opts.server != api.DefaultServer {
		t.Errorf("default server %q (%v), want %s", opts.server, err, api.DefaultServer)
	}

	// $OCM_SERVER when --server is not given; --server wins.
	t.Setenv(ctlServerEnv, fake.addr())
	if _, _, err := runCtl(t, nil, "policy"); err != nil {
		t.Errorf("from $%s: %v", ctlServerEnv, err)
	}
	_, _, err := runCtl(t, nil, "--server", "127.0.0.1:1", "policy")
	var ue *api.UnreachableError
	if !errors.As(err, &ue) || ue.Server != "127.0.0.1:1" {
		t.Errorf("--server over $%s: %v", ctlServerEnv, err)
	}
	// An http:// URL; ":PORT" is this host.
	_, port, _ := net.SplitHostPort(fake.addr())
	for _, s := range []string{fake.URL, fake.URL + "/", ":" + port} {
		if _, _, err := runCtl(t, nil, "--server", s, "policy"); err != nil {
			t.Errorf("--server %s: %v", s, err)
		}
	}

	// Something else on the port: say so instead of a JSON error.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/nodes" {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, "<html>hello</html>")
			return
		}
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprint(w, "<html>nope</html>")
	}))
	defer other.Close()
	oaddr := strings.TrimPrefix(other.URL, "http://")
	_, _, err = runCtl(t, nil, "--server", oaddr, "nodes")
	if err == nil || !strings.Contains(err.Error(), "not JSON: is "+oaddr+" ocm-server's HTTP address?") {
		t.Errorf("HTML 200: %v", err)
	}
	_, _, err = runCtl(t, nil, "--server", oaddr, "policy")
	if err == nil || !strings.Contains(err.Error(), "not ocm-server's API at "+oaddr) || !strings.Contains(err.Error(), "404") {
		t.Errorf("HTML 404: %v", err)
	}

	// A server that does not answer in --timeout.
	block := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(block)
	_, _, err = runCtl(t, nil, "--server", strings.TrimPrefix(slow.URL, "http://"), "--timeout", "50ms", "nodes")
	if !errors.As(err, &ue) || !strings.Contains(err.Error(), "cannot reach ocm-server") || !strings.Contains(err.Error(), "Timeout") {
		t.Errorf("timeout: %v", err)
	}
}

func TestCtlWatch(t *testing.T) {
	fake := startFakeAPI(t)
	frame := "every 1ms from " + fake.addr() + " at 2025-03-01 12:00:00\n\n" + ctlTreesWant

	// Not a terminal: drawings one after the other.
	out, stderr, err := runCtl(t, nil, "--server", fake.addr(), "watch", "--interval", "1ms", "--count", "2")
	if err != nil {
		t.Fatal(err)
	}
	if want := frame + "\n" + frame; out != want || stderr != "" {
		t.Errorf("watch:\n%s\nwant:\n%s\nstderr %q", out, want, stderr)
	}

	// A terminal: clear the screen first. An error is shown, and watch
	// goes on; the last round decides the exit status.
	fake.requests()
	fake.mu.Lock()
	fake.fail = 1
	fake.mu.Unlock()
	term := func(o *ctlOptions) { o.isTerminal = func(io.Writer) bool { return true } }
	out, stderr, err = runCtlWith(t, nil, term, "--server", fake.addr(), "watch", "--interval", "1ms", "--count", "2", "rtsp://ms/other")
	if err != nil {
		t.Fatal(err)
	}
	head := "\x1b[H\x1b[2Jevery 1ms from " + fake.addr() + " at 2025-03-01 12:00:00\n\n"
	other := ctlTreesWant[strings.Index(ctlTreesWant, "rtsp://ms:554/other"):]
	if want := head + "error: server closed (503 Service Unavailable)\n" + head + other; out != want || stderr != "" {
		t.Errorf("watch on a terminal:\n%q\nwant:\n%q\nstderr %q", out, want, stderr)
	}
	if got := fake.requests(); len(got) != 2 {
		t.Errorf("requests %q", got)
	}

	// Not a terminal: errors go to stderr; the last round failing fails.
	fake.mu.Lock()
	fake.fail = 2
	fake.mu.Unlock()
	out, stderr, err = runCtl(t, nil, "--server", fake.addr(), "watch", "--interval", "1ms", "--count", "2")
	if err == nil || stderr != strings.Repeat("ocm-ctl: server closed (503 Service Unavailable)\n", 2) ||
		strings.Count(out, "every 1ms") != 2 {
		t.Errorf("failing watch: err %v\nstdout %q\nstderr %q", err, out, stderr)
	}

	// Until interrupted: the end of the context is a normal end.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var buf testutil.Buffer
	go func() {
		cmd := NewCommand()
		cmd.SetOut(&buf)
		cmd.SetErr(&buf)
		cmd.SetArgs([]string{"--server", fake.addr(), "watch", "--interval", "5ms"})
		done <- cmd.ExecuteContext(ctx)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(buf.String(), "every 5ms") < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("interrupted watch: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop on interrupt")
	}
	if n := strings.Count(buf.String(), "every 5ms"); n < 3 {
		t.Errorf("%d drawings before the interrupt", n)
	}

	for _, args := range [][]string{{"--interval", "0"}, {"--count", "-1"}, {"rtsp://ms:0/x"}} {
		if _, _, err := runCtl(t, nil, append([]string{"--server", fake.addr(), "watch"}, args...)...); err == nil {
			t.Errorf("watch %v: no error", args)
		}
	}
}

func TestCtlURL(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // stdout, or the error with "error: "
	}{
		{[]string{"live", "10.0.0.1"}, "rtsp://localhost:8554/live?10.0.0.1:554"},
		{[]string{"live", "10.0.0.1:8554"}, "rtsp://localhost:8554/live?10.0.0.1:8554"},
		{[]string{"/cams/door/", "Origin.Example:554"}, "rtsp://localhost:8554/cams/door?origin.example:554"},
		{[]string{"live", "ms", "--mediator", "192.168.1.20:8555"}, "rtsp://192.168.1.20:8555/live?ms:554"},
		{[]string{"live", "[::1]"}, "rtsp://localhost:8554/live?[::1]:554"},
		{[]string{"live", "[2001:db8::1]:8554", "--mediator", "[::1]:9554"}, "rtsp://[::1]:9554/live?[2001:db8::1]:8554"},
		{[]string{"rtsp://MS/live"}, "rtsp://localhost:8554/live?ms:554"},
		{[]string{"rtsp://ms:8554/a/b"}, "rtsp://localhost:8554/a/b?ms:8554"},
		{[]string{"rtsp://relay:8555/live?ms"}, "rtsp://localhost:8554/live?ms:554"},
		{[]string{"live", "ms:0"}, `error: malformed enhanced query: port "0" is not a number from 1 to 65535`},
		{[]string{"live", "ms:http"}, `error: malformed enhanced query: port "http" is not a number from 1 to 65535`},
		{[]string{"live", "2001:db8::1"}, "error: malformed enhanced query: \"2001:db8::1\": write IPv6 origins in brackets, [ADDR]:PORT"},
		{[]string{"live", "ms/x"}, `error: malformed enhanced query: "ms/x" is not MSHOST[:MSPORT]`},
		{[]string{"live", "a b"}, `error: malformed enhanced query: "a b" is not MSHOST[:MSPORT]`},
		{[]string{"live", ""}, "error: malformed enhanced query: empty query, want MSHOST[:MSPORT]"},
		{[]string{"", "ms"}, "error: malformed enhanced query: no media path before '?ms'"},
		{[]string{"a/../b", "ms"}, `error: malformed enhanced query: media path "a/../b" has characters that are not allowed`},
		{[]string{"live"}, `error: "live": give MEDIA MSHOST[:PORT], or the origin URL rtsp://MSHOST[:PORT]/MEDIA`},
		{[]string{"http://ms/live"}, `error: "http://ms/live": give MEDIA MSHOST[:PORT], or the origin URL rtsp://MSHOST[:PORT]/MEDIA`},
		{[]string{"live", "ms", "--mediator", "localhost"}, `error: --mediator: "localhost" is not HOST:PORT`},
		{[]string{"live", "ms", "x"}, "error: too many arguments: usage: ocm-ctl url MEDIA MSHOST[:PORT] | url rtsp://MSHOST[:PORT]/MEDIA [flags] (see ocm-ctl url --help)"},
	} {
		// url never talks to the server: point it nowhere.
		out, _, err := runCtl(t, nil, append([]string{"url", "--server", "127.0.0.1:1"}, tc.args...)...)
		got := strings.TrimSuffix(out, "\n")
		if err != nil {
			got = "error: " + err.Error()
		}
		if got != tc.want {
			t.Errorf("url %q:\n got %s\nwant %s", tc.args, got, tc.want)
		}
	}

	out, _, err := runCtl(t, nil, "url", "-o", "json", "cams/door", "MS:8554")
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"url":"rtsp://localhost:8554/cams/door?ms:8554","stream":"rtsp://ms:8554/cams/door","origin":"ms:8554","media":"cams/door"}` + "\n"; out != want {
		t.Errorf("url -o json: %s", out)
	}
}

func TestCtlHelp(t *testing.T) {
	out, _, err := runCtl(t, nil, "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Examples:", "ocm-ctl tree", "OCM_SERVER", "--server", "-o, --output",
		"tree", "nodes", "streams", "reconnect", "kick", "drain", "policy", "watch", "url"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
	for _, sub := range []string{"tree", "nodes", "streams", "reconnect", "kick", "drain", "policy", "watch", "url"} {
		out, _, err := runCtl(t, nil, sub, "--help")
		if err != nil || !strings.Contains(out, "Examples:\n  ocm-ctl "+sub) {
			t.Errorf("%s --help: %v\n%s", sub, err, out)
		}
	}
	// No subcommand: the help, exit 0.
	if out, _, err := runCtl(t, nil); err != nil || !strings.Contains(out, "Available Commands") {
		t.Errorf("no subcommand: %v\n%s", err, out)
	}
}

// TestCtlAgainstServer runs ocm-ctl against a real ocm-server with fake
// relays, decoding every answer strictly: a field the server adds or
// renames fails here, so the api package's types cannot drift.
func TestCtlAgainstServer(t *testing.T) {
	srv := &server.Server{Listen: "127.0.0.1:0", HTTP: "127.0.0.1:0", Heartbeat: time.Hour, OriginCapacity: 2}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	// The relays' port instead of the API's: say so, not "malformed HTTP
	// status code".
	if _, _, err := runCtl(t, nil, "--server", srv.Addr(), "tree"); err == nil ||
		!strings.Contains(err.Error(), "OCM port") || strings.Contains(err.Error(), "malformed") {
		t.Errorf("--server at the OCM port: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const stream = "rtsp://127.0.0.1:554/live"
	relays := map[string]*wire.Client{}
	join := func(id, parent string, capacity int) {
		t.Helper()
		nc, err := net.DialTimeout("tcp", srv.Addr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		cl := wire.NewClient(wire.NewConn(nc))
		t.Cleanup(func() { cl.Close() })
		go func() { // take the pushes (reconnect, drain) nobody reads
			for range cl.Pushes() {
			}
		}()
		if _, err := cl.Hello(ctx, &wire.Hello{Node: id, RTSP: "127.0.0.1:5554", Probe: "127.0.0.1:6072",
			Willing: true, Capacity: capacity, Cores: 2}); err != nil {
			t.Fatalf("%s hello: %v", id, err)
		}
		if _, err := cl.Join(ctx, stream, parent); err != nil {
			t.Fatalf("%s join %s: %v", id, parent, err)
		}
		if err := cl.Report(&wire.Report{CPU: 0.25, Clients: 2, Streams: []wire.StreamReport{
			{Stream: stream, Parent: parent, Readers: 2, Loss: 0.01, Bitrate: 2e6}}}); err != nil {
			t.Fatal(err)
		}
		if err := cl.Heartbeat(ctx); err != nil { // after the report
			t.Fatal(err)
		}
		relays[id] = cl
	}
	join("r1", wire.OriginID, 2)
	join("r2", "r1", 2)
	join("r3", "r2", 2)
	addr := srv.HTTPAddr()

	// -o json, decoded strictly into the types ocm-ctl reads.
	run := func(args ...string) string {
		t.Helper()
		out, _, err := runCtl(t, ctx, append([]string{"--server", addr, "-o", "json"}, args...)...)
		if err != nil {
			t.Fatalf("%v: %v", args, err)
		}
		return out
	}
	strict := func(args []string, v any) {
		t.Helper()
		reflect.ValueOf(v).Elem().SetZero() // decoding reuses what is there
		out := run(args...)
		if n := strings.Count(out, "\n"); n != 1 {
			t.Fatalf("%v: %d lines:\n%s", args, n, out)
		}
		dec := json.NewDecoder(strings.NewReader(out))
		dec.DisallowUnknownFields()
		if err := dec.Decode(v); err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
	}
	var tr api.Tree
	strict([]string{"tree", "rtsp://127.0.0.1/live"}, &tr)
	if tr.Stream != stream || tr.Depth != 3 || len(tr.Nodes) != 3 || tr.Nodes[2].Bitrate != 2e6 {
		t.Errorf("tree: %+v", tr)
	}
	if trs := ctlStrictLines[api.Tree](t, run("tree")); len(trs) != 1 || !reflect.DeepEqual(trs[0], tr) {
		t.Errorf("trees: %+v", trs)
	}
	ns := ctlStrictLines[api.Node](t, run("nodes"))
	if len(ns) != 3 || ns[0].ID != "r1" || ns[0].Remote == "" || ns[0].Connected.IsZero() || ns[0].LastReport == nil || ns[0].CPU != 0.25 {
		t.Errorf("nodes: %+v", ns)
	}
	var s api.Stream
	strict([]string{"streams"}, &s)
	if s.Stream != stream || s.Origin != "127.0.0.1:554" || s.Attached != 3 {
		t.Errorf("streams: %+v", s)
	}
	var p api.Policy
	strict([]string{"policy"}, &p)
	if p.Recovery != "repair" || p.OriginCapacity != 2 || p.HeartbeatMs != time.Hour.Milliseconds() || p.HandoverMs == 0 {
		t.Errorf("policy: %+v", p)
	}
	var sent api.Sent
	strict([]string{"reconnect", "r2", "--subtree"}, &sent)
	if want := []api.Target{{Node: "r2", Stream: stream, Type: wire.TypeReconnect},
		{Node: "r3", Stream: stream, Type: wire.TypeReconnect}}; !reflect.DeepEqual(sent.Sent, want) {
		t.Errorf("reconnect --subtree: %+v", sent)
	}
	strict([]string{"reconnect", "r3", "--to", "r1"}, &sent)
	if want := []api.Target{{Node: "r3", Stream: stream, Type: wire.TypeReconnect, Target: "r1"}}; !reflect.DeepEqual(sent.Sent, want) {
		t.Errorf("reconnect --to: %+v", sent)
	}
	strict([]string{"policy", "gradual"}, &p)
	if p.Recovery != "gradual" {
		t.Errorf("policy gradual: %+v", p)
	}

	// The tables and the drawing.
	out, _, err := runCtl(t, ctx, "--server", addr, "tree")
	if err != nil {
		t.Fatal(err)
	}
	want := `rtsp://127.0.0.1:554/live  (3 relays; depth 3)
NODE             LEVEL   CHILDREN   READERS   LOSS   BITRATE     STATE
origin           0       1/2        -         -      -
` + "`" + `-- r1           1       1/2        2         1.0%   2.00 Mb/s
    ` + "`" + `-- r2       2       1/2        2         1.0%   2.00 Mb/s
        ` + "`" + `-- r3   3       0/2        2         1.0%   2.00 Mb/s
`
	if out != want {
		t.Errorf("tree:\n%s\nwant:\n%s", out, want)
	}
	for _, tc := range []struct{ cmd, want string }{
		{"nodes", "\nr3     yes       0/2        2         25%   2       1         127.0.0.1:5554   127.0.0.1:"},
		{"streams", "\n" + stream + "   127.0.0.1:554   3       3          0         0         3       1\n"},
		{"policy", "recovery           gradual\n"},
	} {
		out, _, err := runCtl(t, ctx, "--server", addr, tc.cmd)
		if err != nil || !strings.Contains(out, tc.want) {
			t.Errorf("%s: %v\n%s\nwant it to contain %q", tc.cmd, err, out, tc.want)
		}
	}

	// Errors: the server's messages.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"tree", "rtsp://127.0.0.1/nope"}, `no tree for stream "rtsp://127.0.0.1:554/nope" (404 Not Found)`},
		{[]string{"kick", "r9"}, `no node "r9" (404 Not Found)`},
		{[]string{"drain", "r9"}, `no node "r9" (404 Not Found)`},
		{[]string{"reconnect", "r9"}, `no node "r9" (404 Not Found)`},
		{[]string{"reconnect", "r1", "--to", "r3"}, `"r3" is "r1" or below it in "rtsp://127.0.0.1:554/live": switching there would be a cycle (400 Bad Request)`},
		{[]string{"policy", "bogus"}, `unknown recovery policy "bogus" (want repair, drop, reconnect or gradual) (400 Bad Request)`},
	} {
		_, _, err := runCtl(t, ctx, append([]string{"--server", addr}, tc.args...)...)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: %v, want %s", tc.args, err, tc.want)
		}
	}

	// drain a leaf, kick another: the server's answers, then the nodes.
	strict([]string{"drain", "r3"}, &sent)
	if len(sent.Sent) != 1 || sent.Sent[0] != (api.Target{Node: "r3", Type: wire.TypeDrain}) {
		t.Errorf("drain: %+v", sent)
	}
	out, _, err = runCtl(t, ctx, "--server", addr, "kick", "r2")
	if err != nil || !strings.HasPrefix(out, "kicked r2: ") {
		t.Errorf("kick: %v %q", err, out)
	}
	select {
	case <-relays["r2"].Done():
	case <-ctx.Done():
		t.Fatal("kicked relay still connected")
	}
}

// ctlStrictLines decodes JSON lines into Ts, failing on unknown fields.
func ctlStrictLines[T any](t *testing.T, out string) []T {
	t.Helper()
	var vs []T
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	for dec.More() {
		var v T
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		vs = append(vs, v)
	}
	return vs
}

// ocm-ctl policy says what --displace is set to in words.
func TestDisplaceText(t *testing.T) {
	for n, want := range map[int]string{-1: "off", 0: "the origin only", 2: "origin and 2 full relays"} {
		if got := displaceText(n); got != want {
			t.Errorf("displaceText(%d) = %q, want %q", n, got, want)
		}
	}
}
