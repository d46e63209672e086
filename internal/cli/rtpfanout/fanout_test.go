package rtpfanout

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/testutil/udptest"
)

// fanoutRun is one in-process rtp-fanout with its stdin, stdout lines and
// stderr.
type fanoutRun struct {
	stdin  *io.PipeWriter
	lines  chan event.Event
	stderr *testutil.Buffer
	done   chan struct{} // closed when the command returned
	err    error
	cancel context.CancelFunc
}

func startFanoutCmd(t *testing.T, args ...string) *fanoutRun {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	r := &fanoutRun{stdin: inW, lines: make(chan event.Event, 1000), stderr: &testutil.Buffer{}, done: make(chan struct{}), cancel: cancel}
	cmd := NewCommand()
	cmd.SetArgs(args)
	cmd.SetIn(inR)
	cmd.SetOut(outW)
	cmd.SetErr(r.stderr)
	go func() {
		r.err = cmd.ExecuteContext(ctx)
		outW.Close()
		close(r.done)
	}()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(r.lines)
		sc := bufio.NewScanner(outR)
		for sc.Scan() {
			e, err := event.Decode(sc.Bytes())
			if err != nil {
				t.Errorf("stdout line is not an event: %v", err)
				continue
			}
			r.lines <- e
		}
	}()
	t.Cleanup(func() {
		cancel()
		inW.Close()
		select {
		case <-r.done:
		case <-time.After(30 * time.Second):
			t.Error("rtp-fanout did not stop")
		}
		outR.Close()
		wg.Wait()
	})
	return r
}

// next returns the next event T of r's stdout, skipping others.
func next[T event.Event](t *testing.T, r *fanoutRun) T {
	t.Helper()
	var zero T
	name := zero.EventName()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case e, ok := <-r.lines:
			if !ok {
				t.Fatalf("stdout ended before a %q line; stderr:\n%s", name, r.stderr)
			}
			if v, ok := e.(T); ok {
				return v
			}
		case <-timeout:
			t.Fatalf("no %q line; stderr:\n%s", name, r.stderr)
		}
	}
}

func (r *fanoutRun) command(t *testing.T, line string) event.Reply {
	t.Helper()
	if _, err := io.WriteString(r.stdin, line+"\n"); err != nil {
		t.Fatal(err)
	}
	return next[event.Reply](t, r)
}

func TestFanoutCommand(t *testing.T) {
	ra, rb := udptest.NewReceiver(t), udptest.NewReceiver(t)
	a, b := ra.URL(), rb.URL()
	aCount, bCount := &ra.Packets, &rb.Packets
	r := startFanoutCmd(t, "--from", "udp://127.0.0.1:0", "--to", a, "--stats-interval", "20ms")

	ready := next[event.FanoutReady](t, r)
	in := fanoutInput(t, ready)
	if fmt.Sprint(ready.To) != fmt.Sprint([]any{a}) {
		t.Errorf("ready to = %v, want [%s]", ready.To, a)
	}

	src := udptest.NewRTPSender(t, in, 200)
	src.Send(t, 10)
	udptest.WaitFor(t, "10 packets at a", func() bool { return aCount.Load() == 10 })

	if rep := r.command(t, `{"op":"add","to":"`+b+`","id":"x1"}`); !rep.OK || rep.To != b || string(rep.ID) != `"x1"` {
		t.Fatalf("add: %+v", rep)
	}
	if rep := r.command(t, `{"op":"list"}`); fmt.Sprint(rep.To) != fmt.Sprint([]any{a, b}) {
		t.Fatalf("list: %+v", rep)
	}
	for _, bad := range []string{`{"op":`, `{"op":"add","to":"udp://127.0.0.1"}`, `{"op":"jump"}`} {
		rep := r.command(t, bad)
		if rep.OK || rep.Error == "" {
			t.Errorf("%s: reply %+v, want an error", bad, rep)
		}
	}
	if rep := r.command(t, strings.Repeat("x", maxControlLine+10)); rep.OK {
		t.Errorf("over-long line: %+v", rep)
	}
	src.Send(t, 5)
	udptest.WaitFor(t, "5 packets at b", func() bool { return bCount.Load() == 5 && aCount.Load() == 15 })

	if rep := r.command(t, `{"op":"remove","to":"`+a+`"}`); !rep.OK {
		t.Fatalf("remove: %+v", rep)
	}
	src.Send(t, 5)
	udptest.WaitFor(t, "10 packets at b", func() bool { return bCount.Load() == 10 })
	if got := aCount.Load(); got != 15 {
		t.Errorf("removed output got %d packets, want 15", got)
	}

	for {
		st := next[event.FanoutStats](t, r)
		if st.In.Packets == 20 {
			if len(st.Out) != 1 || st.Out[0].To != b || st.In.Gaps != 0 {
				t.Errorf("stats: %+v", st)
			}
			break
		}
	}
	if !strings.Contains(r.stderr.String(), "control command failed") {
		t.Errorf("bad commands not logged on stderr:\n%s", r.stderr)
	}

	r.cancel()
	select {
	case <-r.done:
		if r.err != nil {
			t.Errorf("command returned %v after cancel", r.err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("command did not return after cancel")
	}
}

func TestFanoutCommandErrors(t *testing.T) {
	busy := udptest.Listen(t)
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no from", []string{"--to", "udp://127.0.0.1:5000"}, `"from" not set`},
		{"bad from", []string{"--from", "udp://nowhere"}, "--from"},
		{"bad to", []string{"--from", "udp://127.0.0.1:0", "--to", "udp://127.0.0.1:5000?ttl=x"}, "ttl"},
		{"port in use", []string{"--from", "udp://" + busy.LocalAddr().String() + "?rtcp=0"}, "address already in use"},
		{"arguments", []string{"--from", "udp://127.0.0.1:0", "extra"}, "unknown command"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			cmd := NewCommand()
			cmd.SetArgs(c.args)
			cmd.SetIn(strings.NewReader(""))
			cmd.SetOut(&out)
			cmd.SetErr(&errb)
			err := cmd.ExecuteContext(context.Background())
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
			if out.Len() != 0 {
				t.Errorf("stdout not empty on error: %s", out.String())
			}
		})
	}
}

// An SDP known at start is written during Start, yet the ready line still
// comes first.
func TestFanoutCommandReadyBeforeSDP(t *testing.T) {
	a := udptest.NewReceiver(t).URL()
	dir := t.TempDir()
	in := filepath.Join(dir, "in.sdp")
	sdp := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=x\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
	if err := os.WriteFile(in, []byte(sdp), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.sdp")
	r := startFanoutCmd(t, "--from", "udp://127.0.0.1:0", "--to", a, "--input-sdp", in, "--sdp", out, "--stats-interval", "0")
	first := <-r.lines
	if ready, ok := first.(event.FanoutReady); !ok || ready.SDP != out {
		t.Fatalf("first line %T %+v, want ready", first, first)
	}
	if m := next[event.SDP](t, r); m.Path != out {
		t.Errorf("sdp line %+v", m)
	}
	b, err := os.ReadFile(out)
	if err != nil || !strings.Contains(string(b), "a=rtpmap:96 H264/90000") {
		t.Errorf("sdp file: %v\n%s", err, b)
	}
}
