package lab

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
)

// Lines split across writes come out whole, in order; a trailing partial
// line waits for its newline.
func TestStdoutLinesSplitAcrossWrites(t *testing.T) {
	p := &Proc{changed: make(chan struct{})}
	w := stdoutLines{p}
	for _, chunk := range []string{`{"event":"progress","packets":1}` + "\n" + `{"event"`, `:"summary"}`, "\n\n", `tail`} {
		if _, err := w.Write([]byte(chunk)); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{`{"event":"progress","packets":1}`, `{"event":"summary"}`, ``}
	if got := p.Lines(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("lines %q, want %q", got, want)
	}
	if ev := EventsSince[event.ReadSummary](p, time.Time{}); len(ev) != 1 || ev[0].Index != 1 {
		t.Fatalf("summary events: %+v, want one at line 1", ev)
	}
	if e, ok := Last[event.ReadProgress](p); !ok || e.Packets != 1 {
		t.Fatalf("last progress: %+v %v", e, ok)
	}
	if p.badLine == nil {
		t.Error("the empty line was taken for an event")
	}
}

// sh is a stand-in tool: a real process printing the given stdout, then
// waiting to be stopped.
func sh(t *testing.T, script string) *Proc {
	t.Helper()
	p, err := Start(t, "sh", "/bin/sh", "-c", script)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadyEventsAndKill(t *testing.T) {
	p := sh(t, `echo '{"event":"ready","rtsp":"127.0.0.1:1"}'; echo '{"event":"progress","packets":3}'; echo not json; echo '{"event":"progress","packets":7}'; exec sleep 60`)
	ready, err := Ready[event.MediatorReady](context.Background(), p, Patience)
	if err != nil || ready.RTSP != "127.0.0.1:1" {
		t.Fatalf("ready: %+v %v", ready, err)
	}
	e, err := Await[event.ReadProgress](context.Background(), p, Patience, 2, nil)
	if err != nil || e.E.Packets != 7 || e.Index != 3 {
		t.Fatalf("progress from line 2: %+v %v", e, err)
	}
	if _, err := Await[event.ReadSummary](context.Background(), p, 100*time.Millisecond, 0, nil); err == nil || !strings.Contains(err.Error(), "not json") {
		t.Fatalf("awaited an event that never came: %v (the error should show the line that is no event)", err)
	}
	p.Kill()
	if !p.Exited() || p.Err() == nil {
		t.Fatalf("after SIGKILL: exited %v, status %v", p.Exited(), p.Err())
	}
	if _, err := Await[event.ReadSummary](context.Background(), p, Patience, 0, nil); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("await on an exited process: %v", err)
	}
}

func TestReadyMustComeFirst(t *testing.T) {
	p := sh(t, `echo '{"event":"progress"}'; echo '{"event":"ready","rtsp":"x"}'; exec sleep 60`)
	if _, err := p.Ready(context.Background(), Patience); err == nil || !strings.Contains(err.Error(), "not a ready event") {
		t.Fatalf("ready after another line: %v", err)
	}
}

func TestReadyShowsStderrOfAToolThatExits(t *testing.T) {
	p := sh(t, `echo 'listen: address already in use' >&2; exit 1`)
	if _, err := p.Ready(context.Background(), Patience); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("ready of a tool that failed: %v", err)
	}
}

func TestStopAsksFirst(t *testing.T) {
	p := sh(t, `trap 'echo bye; exit 0' INT; echo '{"event":"ready"}'; while :; do sleep 0.05; done`)
	if _, err := p.Ready(context.Background(), Patience); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if l := p.Lines(); l[len(l)-1] != "bye" {
		t.Fatalf("the tool did not see SIGINT: %q", l)
	}
}

func TestStdinSend(t *testing.T) {
	var c Cleanups
	defer c.Run()
	p, err := StartWith(&c, Options{Stdin: true}, "sh", "/bin/sh", "-c", `read l; echo "{\"event\":\"progress\",\"url\":$l}"`)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Send(`"x"`); err != nil {
		t.Fatal(err)
	}
	e, err := Await[event.ReadProgress](context.Background(), p, Patience, 0, nil)
	if err != nil || e.E.URL != "x" {
		t.Fatalf("reply %+v %v", e, err)
	}
}

// Cleanups kills what was started with it, last first.
func TestCleanupsKill(t *testing.T) {
	var c Cleanups
	var order []int
	c.Cleanup(func() { order = append(order, 1) })
	p, err := Start(&c, "sh", "/bin/sh", "-c", "exec sleep 60")
	if err != nil {
		t.Fatal(err)
	}
	c.Cleanup(func() { order = append(order, 2) })
	c.Run()
	if !p.Exited() {
		t.Fatal("Run left the process running")
	}
	if len(order) != 2 || order[0] != 2 || order[1] != 1 {
		t.Fatalf("order %v, want [2 1]", order)
	}
}

func TestCPUTimeOfSelf(t *testing.T) {
	if _, err := CPUTime(0); err != nil {
		t.Fatal(err)
	}
}
