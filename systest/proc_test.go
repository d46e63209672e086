package systest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
)

// patience bounds every wait: a liveness limit for a shared, noisy machine,
// never a performance assertion.
const patience = 20 * time.Second

// proc is a program running in the background for one test. Its stdout is
// kept as lines (the tools print JSON events there), its stderr as text.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited
	err  error         // its exit status, valid after done

	mu      sync.Mutex
	lines   []string
	partial []byte
	stderr  bytes.Buffer
	changed chan struct{} // closed and replaced when a line arrives or the process exits
}

// start runs path with args. The process is killed when the test ends, and
// its output is logged if the test failed.
func start(t *testing.T, name, path string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name, done: make(chan struct{}), changed: make(chan struct{})}
	p.cmd = exec.Command(path, args...)
	p.cmd.Stdout = stdoutLines{p}
	p.cmd.Stderr = stderrText{p}
	p.cmd.SysProcAttr = dieWithTest()
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.wake()
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill()
		saveLogs(t, p, path, args)
		if t.Failed() {
			t.Logf("--- %s: %s %s (%v)\nstdout:\n%s\nstderr:\n%s", name, path, strings.Join(args, " "),
				p.err, tail(strings.Join(p.stdoutLines(), "\n"), 40), tail(p.stderrText(), 40))
		}
	})
	return p
}

// saveLogs writes p's whole stdout and stderr under $OCM_SYSTEST_LOGS, if
// set, in a directory per test: the failure dump shows only their tails.
func saveLogs(t *testing.T, p *proc, path string, args []string) {
	root := os.Getenv("OCM_SYSTEST_LOGS")
	if root == "" {
		return
	}
	dir := filepath.Join(root, strings.ReplaceAll(t.Name(), "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Log(err)
		return
	}
	name := strings.ReplaceAll(p.name, "/", "_")
	header := fmt.Sprintf("%s %s (%v)\n", path, strings.Join(args, " "), p.err)
	_ = os.WriteFile(filepath.Join(dir, name+".stdout"), []byte(header+strings.Join(p.stdoutLines(), "\n")+"\n"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, name+".stderr"), []byte(header+p.stderrText()), 0o644)
}

type stdoutLines struct{ p *proc }

func (w stdoutLines) Write(b []byte) (int, error) {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		p.lines = append(p.lines, string(p.partial[:i]))
		p.partial = p.partial[i+1:]
	}
	p.wake()
	return len(b), nil
}

type stderrText struct{ p *proc }

func (w stderrText) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.stderr.Write(b)
}

// wake tells waiters something changed; p.mu must be held.
func (p *proc) wake() {
	close(p.changed)
	p.changed = make(chan struct{})
}

func (p *proc) stdoutLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

func (p *proc) stderrText() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends SIGKILL and waits for the process to be gone.
func (p *proc) kill() {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// stop asks the process to shut down (SIGINT), as a user's Ctrl-C would,
// and returns its exit status; it kills the process if it does not exit.
func (p *proc) stop() error {
	if !p.exited() {
		_ = p.cmd.Process.Signal(os.Interrupt)
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(patience):
		p.kill()
		return fmt.Errorf("%s ignored SIGINT for %s and was killed", p.name, patience)
	}
}

// watch calls cond with the stdout lines so far each time they change,
// until it accepts them (nil), or the process exits or limit passes
// without that (an error saying which). It is safe from any goroutine.
func (p *proc) watch(limit time.Duration, cond func(lines []string) bool) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		exited := p.exited() // before cond: once exited, every line is in
		ok := cond(p.lines)
		changed := p.changed
		p.mu.Unlock()
		switch {
		case ok:
			return nil
		case exited:
			return fmt.Errorf("%s exited (%v)", p.name, p.err)
		}
		select {
		case <-changed:
		case <-p.done:
		case <-deadline.C:
			return fmt.Errorf("%s: not within %s", p.name, limit)
		}
	}
}

// waitLine returns the first stdout line at index from or later that match
// accepts, and its index. It fails the test if none comes within patience
// or the process exits first.
func (p *proc) waitLine(t *testing.T, what string, from int, match func(string) bool) (string, int) {
	t.Helper()
	line, at := "", -1
	err := p.watch(patience, func(lines []string) bool {
		for i := from; i < len(lines); i++ {
			if match(lines[i]) {
				line, at = lines[i], i
				return true
			}
		}
		from = max(from, len(lines))
		return false
	})
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return line, at
}

// parseEvent decodes one stdout line, with the time the tool wrote in it;
// nil if the line is not an event.
func parseEvent(line string) (event.Event, time.Time) {
	e, at, err := event.DecodeTime([]byte(line))
	if err != nil {
		return nil, time.Time{}
	}
	return e, at
}

// lineSource is a running tool's stdout: a *proc, or what embeds one.
type lineSource interface {
	waitLine(t *testing.T, what string, from int, match func(string) bool) (string, int)
	stdoutLines() []string
}

// waitEvent is waitLine for events T.
func waitEvent[T event.Event](t *testing.T, p lineSource, what string, from int, match func(T) bool) (T, int) {
	t.Helper()
	line, i := p.waitLine(t, what, from, func(s string) bool {
		e, _ := parseEvent(s)
		v, ok := e.(T)
		return ok && match(v)
	})
	e, _ := parseEvent(line)
	return e.(T), i
}

// timed is an event and the time its tool wrote in it.
type timed[T event.Event] struct {
	At time.Time
	E  T
}

// timedEventsOf returns the events T printed so far, with their times.
func timedEventsOf[T event.Event](p lineSource) []timed[T] {
	var out []timed[T]
	for _, l := range p.stdoutLines() {
		if e, at := parseEvent(l); e != nil {
			if v, ok := e.(T); ok {
				out = append(out, timed[T]{at, v})
			}
		}
	}
	return out
}

// eventsOf returns the events T printed so far.
func eventsOf[T event.Event](p lineSource) []T {
	var out []T
	for _, e := range timedEventsOf[T](p) {
		out = append(out, e.E)
	}
	return out
}

// mediator is a running rtsp-mediator.
type mediator struct {
	*proc
	addr string // the RTSP HOST:PORT from its ready line
}

// mediatorDefaults come before a test's own flags, which override them:
// TCP only on a free loopback port, and stats often enough to watch.
var mediatorDefaults = []string{"--listen", "127.0.0.1:0", "--rtp", "off", "--rtcp", "off", "--stats-interval", "500ms"}

func startMediator(t *testing.T, name string, args ...string) *mediator {
	t.Helper()
	m, err := tryMediator(t, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// tryMediator starts a mediator and waits for its ready line; it returns an
// error, with the mediator's stderr, if the mediator exits first.
func tryMediator(t *testing.T, name string, args ...string) (*mediator, error) {
	t.Helper()
	return tryMediatorVia(t, name, nil, args...)
}

// startMediatorVia starts a mediator through a launcher command, such as
// prlimit or ip netns exec.
func startMediatorVia(t *testing.T, name string, launcher []string, args ...string) *mediator {
	t.Helper()
	m, err := tryMediatorVia(t, name, launcher, args...)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// tryMediatorVia is tryMediator through launcher (none if empty).
func tryMediatorVia(t *testing.T, name string, launcher []string, args ...string) (*mediator, error) {
	t.Helper()
	argv := append(append(append([]string(nil), launcher...), tool("rtsp-mediator")), mediatorDefaults...)
	p := start(t, name, argv[0], append(argv[1:], args...)...)
	var first string
	if err := p.watch(patience, func(lines []string) bool {
		if len(lines) > 0 {
			first = lines[0]
		}
		return first != ""
	}); err != nil {
		return nil, fmt.Errorf("%s printed no ready line: %v:\n%s", name, err, p.stderrText())
	}
	e, _ := parseEvent(first)
	ready, ok := e.(event.MediatorReady)
	if !ok || ready.RTSP == "" {
		return nil, fmt.Errorf("%s: first stdout line is not a ready event: %s", name, first)
	}
	return &mediator{proc: p, addr: ready.RTSP}, nil
}

// startMediatorAt starts a mediator on a fixed address, as a restarted host
// would; it retries while the port is still held.
func startMediatorAt(t *testing.T, name, addr string, args ...string) *mediator {
	t.Helper()
	var err error
	for range 20 {
		var m *mediator
		if m, err = tryMediator(t, name, append([]string{"--listen", addr}, args...)...); err == nil {
			return m
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatal(err)
	return nil
}

// startMediatorUDP starts a mediator that also serves players over UDP,
// on two consecutive free ports; it tries again if another process takes
// them first.
func startMediatorUDP(t *testing.T, name string, args ...string) *mediator {
	t.Helper()
	var err error
	for range 5 {
		rtp := freeUDPPair(t)
		udp := []string{"--rtp", fmt.Sprintf("127.0.0.1:%d", rtp), "--rtcp", fmt.Sprintf("127.0.0.1:%d", rtp+1)}
		var m *mediator
		if m, err = tryMediator(t, name, append(udp, args...)...); err == nil {
			return m
		}
		if !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	t.Fatal(err)
	return nil
}

// freeUDPPair returns an even port P such that P and P+1 were both free on
// 127.0.0.1 a moment ago.
func freeUDPPair(t *testing.T) int {
	t.Helper()
	for range 100 {
		c1, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := c1.LocalAddr().(*net.UDPAddr).Port
		if port%2 != 0 { // gortsplib wants an even RTP port
			c1.Close()
			continue
		}
		c2, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port+1))
		c1.Close()
		if err == nil {
			c2.Close()
			return port
		}
	}
	t.Fatal("found no two consecutive free UDP ports")
	return 0
}

// enhanced is the URL a player opens on a mediator to get MEDIA from the
// origin: rtsp://MEDIATOR/MEDIA?ORIGIN.
func enhanced(mediatorAddr, media, originAddr string) string {
	return "rtsp://" + mediatorAddr + "/" + media + "?" + originAddr
}

// upstreamEvent matches a mediator's upstream event in state with the
// upstream URL up.
func upstreamEvent(state, up string) func(event.Upstream) bool {
	return func(e event.Upstream) bool {
		return e.State == state && e.Upstream == up
	}
}

// startReader runs `rtsp-mediator read URL` until stopped: a Go player that
// prints its packet, frame and sequence-gap counts four times a second.
func startReader(t *testing.T, name, url string) *proc {
	t.Helper()
	return start(t, name, tool("rtsp-mediator"), "read", url, "--interval", "250ms")
}

// progressAtLeast matches a reader's progress line once packets >= n.
func progressAtLeast(n float64) func(event.ReadProgress) bool {
	return func(e event.ReadProgress) bool { return float64(e.Packets) >= n }
}

// packetsSoFar is the packet count of the reader's latest progress line.
func packetsSoFar(r *proc) float64 {
	ev := eventsOf[event.ReadProgress](r)
	if len(ev) == 0 {
		return 0
	}
	return float64(ev[len(ev)-1].Packets)
}

// stopReader stops a reader and returns its summary line; the reader must
// exit cleanly, its session never having ended under it.
func stopReader(t *testing.T, r *proc) event.ReadSummary {
	t.Helper()
	if r.exited() {
		t.Fatalf("%s exited before it was stopped (%v); its session ended", r.name, r.err)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("%s: %v\n%s", r.name, err, r.stderrText())
	}
	if s := r.stderrText(); strings.Contains(s, "session ended") {
		t.Errorf("%s reports its session ended:\n%s", r.name, s)
	}
	ev := eventsOf[event.ReadSummary](r)
	if len(ev) != 1 {
		t.Fatalf("%s printed %d summary lines, want 1", r.name, len(ev))
	}
	return ev[0]
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

// waitStderr waits until match accepts the process's stderr: a tool may
// answer a request before the log line about it reaches us.
func (p *proc) waitStderr(match func(string) bool) bool {
	deadline := time.Now().Add(patience)
	for !match(p.stderrText()) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}
