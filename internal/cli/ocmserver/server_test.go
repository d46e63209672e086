package ocmserver

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/server"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// The command prints the ready line first, takes its token from
// OCM_TOKEN, serves relays, and stops cleanly when its context ends.
func TestServerCommandReadyAndToken(t *testing.T) {
	t.Setenv("OCM_TOKEN", "s3cret")
	pr, pw := io.Pipe()
	cmd := NewCommand()
	cmd.SetArgs([]string{"--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--recovery", "gradual",
		"--reconnect-step", "250ms", "--handover-timeout", "3s"})
	cmd.SetOut(pw)
	cmd.SetErr(io.Discard)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.ExecuteContext(ctx); pw.Close() }()

	lines := bufio.NewScanner(pr)
	if !lines.Scan() {
		t.Fatalf("no ready line: %v", <-done)
	}
	e, err := event.Decode(lines.Bytes())
	ready, _ := e.(event.ServerReady)
	if err != nil || ready.OCM == "" || ready.HTTP == "" || ready.Version == "" || ready.Version != cli.Version() {
		t.Fatalf("first line %q (%v)", lines.Text(), err)
	}
	go func() { // keep stdout flowing
		for lines.Scan() {
		}
	}()

	for _, tc := range []struct {
		token string
		want  string
	}{{"wrong", wire.TypeError}, {"s3cret", wire.TypeWelcome}} {
		c, err := wire.Dial("tcp", ready.OCM, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c.SetReadTimeout(20 * time.Second)
		if _, err := c.Send(&wire.Hello{Node: "n1", Token: tc.token}); err != nil {
			t.Fatal(err)
		}
		m, err := c.ReadMsg()
		if err != nil || m.Type != tc.want {
			t.Fatalf("token %q: got %+v, %v", tc.token, m, err)
		}
		if w, ok := m.Body.(*wire.Welcome); ok && (w.Recovery != "gradual" || w.ReconnectStepMs != 250 || w.HandoverMs != 3000) {
			t.Fatalf("welcome %+v", w)
		}
		c.Close()
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("command returned %v", err)
	}
}

func TestServerCommandBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"--recovery", "magic"},
		{"--max-candidates", "0"},
		{"--origin-capacity", "-1"},
		{"--near-candidates", "-1"},
		{"--displace", "-2", "--http", "off"},
		{"--http-max-body", "0", "--http", "off"},
		{"--http-max-header-bytes", "0", "--http", "off"},
		{"--http-read-timeout", "-1s", "--http", "off"},
		{"--stall-limit", "-1", "--http", "off"},
		{"--stall-window", "-1s", "--http", "off"},
		{"--listen", "127.0.0.1:-5", "--http", "off"},
		{"extra-arg"},
	} {
		cmd := NewCommand()
		cmd.SetArgs(args)
		var stderr strings.Builder
		cmd.SetOut(io.Discard)
		cmd.SetErr(&stderr)
		if err := cmd.ExecuteContext(context.Background()); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}

// --reconnect-step is the name; --gradual-step stays as a hidden
// alias setting the same value.
func TestServerCommandStepFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "500ms"},
		{[]string{"--reconnect-step", "250ms"}, "250ms"},
		{[]string{"--gradual-step", "100ms"}, "100ms"},
	} {
		cmd := NewCommand()
		if err := cmd.Flags().Parse(tc.args); err != nil {
			t.Fatal(err)
		}
		if got := cmd.Flags().Lookup("reconnect-step").Value.String(); got != tc.want {
			t.Errorf("%v: reconnect step %s, want %s", tc.args, got, tc.want)
		}
		if !cmd.Flags().Lookup("gradual-step").Hidden {
			t.Error("--gradual-step is not hidden")
		}
	}
}

// --displace reaches the server: its policy endpoint says what is in
// force (-1 off, else the full relays offered besides the origin).
func TestServerCommandDisplace(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want int
	}{{nil, server.DefaultDisplace}, {[]string{"--displace", "5"}, 5}, {[]string{"--displace", "0"}, 0}, {[]string{"--displace", "-1"}, -1}} {
		pr, pw := io.Pipe()
		cmd := NewCommand()
		cmd.SetArgs(append([]string{"--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"}, tc.args...))
		cmd.SetOut(pw)
		cmd.SetErr(io.Discard)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- cmd.ExecuteContext(ctx); pw.Close() }()
		lines := bufio.NewScanner(pr)
		if !lines.Scan() {
			cancel()
			t.Fatalf("%v: no ready line: %v", tc.args, <-done)
		}
		e, _ := event.Decode(lines.Bytes())
		ready, _ := e.(event.ServerReady)
		go func() { // keep stdout flowing
			for lines.Scan() {
			}
		}()
		c, err := api.New(ready.HTTP)
		if err != nil {
			t.Fatal(err)
		}
		p, _, err := c.Policy(ctx)
		cancel()
		if derr := <-done; derr != nil {
			t.Errorf("%v: command returned %v", tc.args, derr)
		}
		if err != nil || p.Displace != tc.want {
			t.Errorf("%v: policy displace %d (%v), want %d", tc.args, p.Displace, err, tc.want)
		}
	}
}
