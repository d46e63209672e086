package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
)

// proc is one tool started by a bench case: its ready line, its later JSON
// events and the tail of its stderr for error reports.
type proc struct {
	name  string
	cmd   *exec.Cmd
	Ready event.Event // the first event line named "ready"

	mu      sync.Mutex
	last    map[string]event.Event  // the latest line of each event name
	log     map[string][]timedEvent // the latest eventLogMax lines of each event, with arrival times
	badLine error                   // the first stdout line that is not an event
	stderr  tailBuffer

	exited  chan struct{} // closed when the process has exited
	waitErr error
	stopped bool
}

// startTool starts path with args and waits up to readyTimeout for its
// ready line on stdout; it returns an error with the tool's stderr tail if
// the tool exits or stays silent. The process is killed when ctx is done;
// callers Stop it when they are finished with it.
func startTool(ctx context.Context, path string, args []string, readyTimeout time.Duration) (*proc, error) {
	return startToolEnv(ctx, path, args, nil, readyTimeout)
}

// startToolEnv is startTool with variables ("K=V") added to the environment.
func startToolEnv(ctx context.Context, path string, args, env []string, readyTimeout time.Duration) (*proc, error) {
	p := &proc{
		name:   fmt.Sprintf("%s %s", baseName(path), strings.Join(args, " ")),
		last:   map[string]event.Event{},
		log:    map[string][]timedEvent{},
		exited: make(chan struct{}),
	}
	p.stderr.max = 16 << 10
	ready := make(chan event.Event, 1)
	p.cmd = exec.Command(path, args...)
	if env != nil {
		p.cmd.Env = append(os.Environ(), env...)
	}
	p.cmd.Stderr = &p.stderr
	p.cmd.Stdout = &lineWriter{fn: func(line []byte) { p.event(line, ready) }}
	// A grandchild holding the pipes open must not hang Wait.
	p.cmd.WaitDelay = 2 * time.Second
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", p.name, err)
	}

	go func() {
		err := p.cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.mu.Unlock()
		close(p.exited)
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = p.cmd.Process.Kill()
		case <-p.exited:
		}
	}()

	timer := time.NewTimer(readyTimeout)
	defer timer.Stop()
	select {
	case m := <-ready:
		p.Ready = m
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited before its ready line: %v\n%s", p.name, p.exitErr(), p.StderrTail())
	case <-timer.C:
		p.Stop()
		return nil, fmt.Errorf("%s: no ready line within %v\n%s", p.name, readyTimeout, p.StderrTail())
	case <-ctx.Done():
		p.Stop()
		return nil, ctx.Err()
	}
}

// timedEvent is one event line and when this process read it.
type timedEvent = timed[event.Event]

// timed is an event and when this process read it.
type timed[T event.Event] struct {
	At time.Time
	E  T
}

// eventLogMax bounds the lines kept per event name.
const eventLogMax = 256

// event handles one stdout line: it keeps the latest line of every event,
// a log of recent ones with their arrival times, and hands over the first
// ready line. Lines that are not events are kept out; the first one is
// reported when a wait fails.
func (p *proc) event(line []byte, ready chan<- event.Event) {
	at := time.Now()
	m, err := event.Decode(line)
	if err != nil {
		p.mu.Lock()
		if p.badLine == nil {
			p.badLine = err
		}
		p.mu.Unlock()
		return
	}
	name := m.EventName()
	p.mu.Lock()
	_, seen := p.last["ready"]
	p.last[name] = m
	l := append(p.log[name], timedEvent{At: at, E: m})
	if len(l) > eventLogMax {
		l = append(l[:0], l[len(l)-eventLogMax:]...)
	}
	p.log[name] = l
	p.mu.Unlock()
	if name == "ready" && !seen {
		ready <- m
	}
}

// lineWriter calls fn with each complete line written to it (without the
// newline); a line longer than 1 MiB is dropped.
type lineWriter struct {
	fn      func([]byte)
	partial []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	n := len(b)
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			if len(w.partial)+len(b) <= 1<<20 {
				w.partial = append(w.partial, b...)
			}
			break
		}
		line := b[:i]
		if len(w.partial) > 0 {
			line = append(w.partial, line...)
			w.partial = w.partial[:0]
		}
		w.fn(line)
		b = b[i+1:]
	}
	return n, nil
}

// readyAddr returns an address of p's ready line, a T: get picks the field
// named key. A ready line of another tool, or without it, is an error.
func readyAddr[T event.Event](p *proc, key string, get func(T) string) (string, error) {
	r, ok := p.Ready.(T)
	if s := get(r); ok && s != "" {
		return s, nil
	}
	return "", fmt.Errorf("%s: ready line has no %q: %+v", p.name, key, p.Ready)
}

// LastEvent returns the latest line of the named event, or nil.
func (p *proc) LastEvent(name string) event.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.last[name]
}

// eventsSince returns p's events T read at or after t, in order, with the
// times they were read (at most the latest eventLogMax of their name).
func eventsSince[T event.Event](p *proc, t time.Time) []timed[T] {
	var zero T
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []timed[T]
	for _, e := range p.log[zero.EventName()] {
		if v, ok := e.E.(T); ok && !e.At.Before(t) {
			out = append(out, timed[T]{At: e.At, E: v})
		}
	}
	return out
}

// waitEvent waits up to limit for an event T of p read at or after since
// for which match (nil: any) is true, and returns it.
func waitEvent[T event.Event](ctx context.Context, p *proc, since time.Time, match func(T) bool, limit time.Duration) (timed[T], error) {
	var zero T
	name := zero.EventName()
	deadline := time.Now().Add(limit)
	for {
		for _, e := range eventsSince[T](p, since) {
			if match == nil || match(e.E) {
				return e, nil
			}
		}
		if !p.Alive() {
			return timed[T]{}, fmt.Errorf("%s exited waiting for a %q event: %v\n%s", p.name, name, p.exitErr(), p.StderrTail())
		}
		if time.Now().After(deadline) {
			p.mu.Lock()
			bad := p.badLine
			p.mu.Unlock()
			if bad != nil {
				return timed[T]{}, fmt.Errorf("%s: no %q event within %v (and a line that is not an event: %v)", p.name, name, limit, bad)
			}
			return timed[T]{}, fmt.Errorf("%s: no %q event within %v", p.name, name, limit)
		}
		t := time.NewTimer(5 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return timed[T]{}, ctx.Err()
		case <-t.C:
		}
	}
}

// PID returns the process id.
func (p *proc) PID() int { return p.cmd.Process.Pid }

// Alive reports whether the process is still running.
func (p *proc) Alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// Stop asks the process to stop (SIGTERM), kills it if it has not exited
// within 3 s, and waits. It is idempotent.
func (p *proc) Stop() {
	p.mu.Lock()
	already := p.stopped
	p.stopped = true
	p.mu.Unlock()
	if !already {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	select {
	case <-p.exited:
		return
	case <-time.After(3 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// Kill sends SIGKILL at once (a host that dies) and waits for the exit.
// It is idempotent and may follow or precede Stop.
func (p *proc) Kill() {
	p.mu.Lock()
	p.stopped = true
	p.mu.Unlock()
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

func (p *proc) exitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.waitErr
}

// StderrTail returns the last lines the tool wrote on stderr.
func (p *proc) StderrTail() string { return p.stderr.String() }

// CPUTime returns the user plus system CPU time the process has used.
func (p *proc) CPUTime() (time.Duration, error) { return cpuTime(p.PID()) }

// clockTick is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports (the kernel fixes it for user space), so a
// window of a few seconds measures CPU to within a percent or so.
const clockTick = 10 * time.Millisecond

// cpuTime reads utime+stime of pid (0: this process) from /proc, summed
// over all its threads.
func cpuTime(pid int) (time.Duration, error) {
	path := "/proc/self/stat"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/stat", pid)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces and parentheses: split
	// after its closing one. The rest starts at field 3, utime is field 14.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, fmt.Errorf("%s: unexpected format", path)
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("%s: too few fields", path)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return time.Duration(utime+stime) * clockTick, nil
}

// cpuMeter measures a process's CPU seconds per wall second over a window.
type cpuMeter struct {
	pid   int
	cpu0  time.Duration
	wall0 time.Time
}

func startCPUMeter(pid int) (*cpuMeter, error) {
	c, err := cpuTime(pid)
	if err != nil {
		return nil, err
	}
	return &cpuMeter{pid: pid, cpu0: c, wall0: time.Now()}, nil
}

// PerWall returns CPU seconds used per wall second since the meter started.
func (m *cpuMeter) PerWall() (float64, error) {
	c, err := cpuTime(m.pid)
	if err != nil {
		return 0, err
	}
	return (c - m.cpu0).Seconds() / time.Since(m.wall0).Seconds(), nil
}

// loadAverage returns the host's one-minute load average, or -1: context for
// CPU figures taken on a machine shared with other work.
func loadAverage() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (t *tailBuffer) Write(b []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, b...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(b), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

func baseName(path string) string {
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		return path[i+1:]
	}
	return path
}
