package lab

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// LogDir, if set, is where every process's whole stdout and stderr are
// written when its owner cleans up, in a directory per owner (a test's
// failure dump shows only their tails).
var LogDir string

// Options are the less common ways to start a tool.
type Options struct {
	Env       []string      // added to the environment ("K=V")
	Stdin     bool          // keep a pipe to its stdin, for Send
	StopLimit time.Duration // how long Stop waits before SIGKILL (default Patience)
}

// maxStderr bounds the stderr kept per process: its tail.
const maxStderr = 4 << 20

// Proc is a tool running in the background. Its stdout is kept as lines
// (the tools print JSON events there), each decoded once as it arrives;
// its stderr as text.
type Proc struct {
	Name string
	Path string
	Args []string

	cmd       *exec.Cmd
	stdin     io.WriteCloser
	stopLimit time.Duration
	done      chan struct{} // closed once the process has exited

	mu      sync.Mutex
	err     error // its exit status, valid after done
	lines   []string
	events  []Event
	badLine error // why the first line that is not an event is not one
	partial []byte
	stderr  []byte
	changed chan struct{} // closed and replaced when a line arrives or the process exits
}

// Start runs path with args as name and kills it (SIGKILL) when c cleans
// up; a test that failed then logs the tails of its output.
func Start(c Cleaner, name, path string, args ...string) (*Proc, error) {
	return StartWith(c, Options{}, name, path, args...)
}

// StartWith is Start with options.
func StartWith(c Cleaner, o Options, name, path string, args ...string) (*Proc, error) {
	p := &Proc{Name: name, Path: path, Args: args, stopLimit: o.StopLimit,
		done: make(chan struct{}), changed: make(chan struct{})}
	if p.stopLimit <= 0 {
		p.stopLimit = Patience
	}
	p.cmd = exec.Command(path, args...)
	if o.Env != nil {
		p.cmd.Env = append(os.Environ(), o.Env...)
	}
	p.cmd.Stdout = stdoutLines{p}
	p.cmd.Stderr = stderrTail{p}
	p.cmd.SysProcAttr = DieWithParent()
	// A grandchild holding the pipes open must not hang Wait.
	p.cmd.WaitDelay = 2 * time.Second
	if o.Stdin {
		w, err := p.cmd.StdinPipe()
		if err != nil {
			return nil, err
		}
		p.stdin = w
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.err = err
		p.wake()
		p.mu.Unlock()
		close(p.done)
	}()
	c.Cleanup(func() {
		p.Kill()
		if r, ok := c.(reporter); ok {
			p.saveLogs(r.Name())
			if r.Failed() {
				r.Logf("--- %s: %s %s (%v)\nstdout:\n%s\nstderr:\n%s", name, path, strings.Join(args, " "),
					p.Err(), Tail(strings.Join(p.Lines(), "\n"), 40), Tail(p.Stderr(), 40))
			}
		}
	})
	return p, nil
}

// saveLogs writes p's whole stdout and stderr under LogDir, if set.
func (p *Proc) saveLogs(owner string) {
	if LogDir == "" {
		return
	}
	dir := filepath.Join(LogDir, strings.ReplaceAll(owner, "/", "_"))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	name := strings.ReplaceAll(p.Name, "/", "_")
	header := fmt.Sprintf("%s %s (%v)\n", p.Path, strings.Join(p.Args, " "), p.Err())
	_ = os.WriteFile(filepath.Join(dir, name+".stdout"), []byte(header+strings.Join(p.Lines(), "\n")+"\n"), 0o644)
	_ = os.WriteFile(filepath.Join(dir, name+".stderr"), []byte(header+p.Stderr()), 0o644)
}

type stdoutLines struct{ p *Proc }

func (w stdoutLines) Write(b []byte) (int, error) {
	p := w.p
	at := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.partial = append(p.partial, b...)
	for {
		i := bytes.IndexByte(p.partial, '\n')
		if i < 0 {
			break
		}
		line := string(p.partial[:i])
		if e, err := decodeEvent(line, at, len(p.lines)); err == nil {
			p.events = append(p.events, e)
		} else if p.badLine == nil {
			p.badLine = err
		}
		p.lines = append(p.lines, line)
		p.partial = p.partial[i+1:]
	}
	p.wake()
	return len(b), nil
}

type stderrTail struct{ p *Proc }

func (w stderrTail) Write(b []byte) (int, error) {
	p := w.p
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stderr = append(p.stderr, b...)
	if over := len(p.stderr) - maxStderr; over > 0 {
		p.stderr = append(p.stderr[:0], p.stderr[over:]...)
	}
	return len(b), nil
}

// wake tells waiters something changed; p.mu must be held.
func (p *Proc) wake() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Lines returns the stdout lines so far.
func (p *Proc) Lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.lines...)
}

// Stderr returns what the process wrote on stderr (its last 4 MiB).
func (p *Proc) Stderr() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.stderr)
}

// StderrTail returns the last lines of its stderr, for error reports.
func (p *Proc) StderrTail() string { return Tail(p.Stderr(), 40) }

// PID returns the process id.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err returns its exit status once it has exited.
func (p *Proc) Err() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// Signal sends sig unless the process has exited.
func (p *Proc) Signal(sig os.Signal) error {
	if p.Exited() {
		return nil
	}
	return p.cmd.Process.Signal(sig)
}

// Kill sends SIGKILL (a host that dies) and waits for the process to be
// gone. It is idempotent.
func (p *Proc) Kill() {
	if !p.Exited() {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
	}
	<-p.done
}

// Stop asks the process to shut down (SIGINT), as a user's Ctrl-C would,
// and returns its exit status; it kills the process if it does not exit
// within its stop limit.
func (p *Proc) Stop() error {
	_ = p.Signal(os.Interrupt)
	t := time.NewTimer(p.stopLimit)
	defer t.Stop()
	select {
	case <-p.done:
		return p.Err()
	case <-t.C:
		p.Kill()
		return fmt.Errorf("%s ignored SIGINT for %s and was killed", p.Name, p.stopLimit)
	}
}

// Send writes one line to the process's stdin (Options.Stdin).
func (p *Proc) Send(line string) error {
	if p.stdin == nil {
		return fmt.Errorf("%s: started without stdin", p.Name)
	}
	_, err := io.WriteString(p.stdin, line+"\n")
	return err
}

// Watch calls cond with the stdout lines so far each time they change,
// until it accepts them (nil), or the process exits, limit passes or ctx
// ends without that (an error saying which). It is safe from any goroutine.
func (p *Proc) Watch(ctx context.Context, limit time.Duration, cond func(lines []string) bool) error {
	return p.watch(ctx, limit, func() bool { return cond(p.lines) })
}

// watch is Watch over any state guarded by p.mu.
func (p *Proc) watch(ctx context.Context, limit time.Duration, cond func() bool) error {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		exited := p.Exited() // before cond: once exited, every line is in
		ok := cond()
		changed := p.changed
		p.mu.Unlock()
		switch {
		case ok:
			return nil
		case exited:
			return fmt.Errorf("%s exited (%v)", p.Name, p.Err())
		}
		select {
		case <-changed:
		case <-p.done:
		case <-deadline.C:
			return fmt.Errorf("%s: not within %s", p.Name, limit)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// WaitLine returns the first stdout line at index from or later that match
// accepts, and its index. It fails t if none comes within Patience or the
// process exits first.
func (p *Proc) WaitLine(t TB, what string, from int, match func(string) bool) (string, int) {
	t.Helper()
	line, at := "", -1
	err := p.Watch(context.Background(), Patience, func(lines []string) bool {
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

// explain adds to a failed wait for an event named name the first stdout
// line that is not an event, if any: a renamed field shows there.
func (p *Proc) explain(err error, name string) error {
	p.mu.Lock()
	bad := p.badLine
	p.mu.Unlock()
	if bad != nil {
		return fmt.Errorf("%w (no %q event; a line that is not an event: %v)", err, name, bad)
	}
	return err
}

// Ready waits up to limit for the process's first stdout line, which must
// be its ready event (the addresses it bound), and returns it.
func (p *Proc) Ready(ctx context.Context, limit time.Duration) (Event, error) {
	var first string
	if err := p.Watch(ctx, limit, func(lines []string) bool {
		if len(lines) > 0 {
			first = lines[0]
		}
		return first != ""
	}); err != nil {
		return Event{}, fmt.Errorf("%s printed no ready line: %v:\n%s", p.Name, err, p.Stderr())
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.events) == 0 || p.events[0].Index != 0 || p.events[0].Name() != "ready" {
		return Event{}, errNotReady(p, first)
	}
	return p.events[0], nil
}

func errNotReady(p *Proc, first string) error {
	return fmt.Errorf("%s: first stdout line is not a ready event: %s", p.Name, first)
}

// WaitStderr waits up to Patience until match accepts the process's
// stderr: a tool may answer a request before the log line about it
// reaches us.
func (p *Proc) WaitStderr(match func(string) bool) bool {
	deadline := time.Now().Add(Patience)
	for !match(p.Stderr()) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("[... %d lines]", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}
