package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/lab"
	"github.com/ocm-overlay/ocm/internal/retry"
)

// serverProc is the ocm-server under test: one this tool started, or one
// it was pointed at (--server, then pid is 0 unless --server-pid).
type serverProc struct {
	ocm, http string
	pid       int
	cmd       *exec.Cmd
	exited    chan struct{}
	events    atomic.Int64 // stdout lines (events)
	logLines  atomic.Int64 // stderr lines (logs)
	stderr    tail
}

// buildServer builds ocm-server into dir and returns its path.
func buildServer(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "ocm-server")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/ocm-overlay/ocm/cmd/ocm-server")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ocm-server: %w\n%s", err, b)
	}
	return out, nil
}

// startServer runs bin with args on free loopback ports (on cpus only, a
// CPU list, unless empty) and waits for its ready line.
func startServer(ctx context.Context, bin string, args, env []string, cpus string) (*serverProc, error) {
	p := &serverProc{exited: make(chan struct{})}
	all := append([]string{"--listen", "127.0.0.1:0", "--http", "127.0.0.1:0"}, args...)
	p.cmd = exec.Command(bin, all...)
	if cpus != "" {
		// taskset execs the server: the same process, every thread of
		// it on cpus from its start.
		p.cmd = exec.Command("taskset", append([]string{"--cpu-list", cpus, bin}, all...)...)
	}
	p.cmd.Env = append(os.Environ(), env...)
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	p.pid = p.cmd.Process.Pid
	ready := make(chan event.ServerReady, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		first := true
		for sc.Scan() {
			p.events.Add(1)
			if first {
				if e, err := event.Decode(sc.Bytes()); err == nil {
					if r, ok := e.(event.ServerReady); ok {
						first = false
						ready <- r
					}
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.logLines.Add(1)
			p.stderr.add(sc.Text())
		}
		_, _ = io.Copy(io.Discard, stderr)
		_ = p.cmd.Wait()
		close(p.exited)
	}()
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case r := <-ready:
		p.ocm, p.http = r.OCM, r.HTTP
		if p.ocm == "" || p.http == "" {
			p.stop()
			return nil, fmt.Errorf("ready line without ocm and http addresses: %+v", r)
		}
		return p, nil
	case <-p.exited:
		return nil, fmt.Errorf("%s exited before its ready line:\n%s", bin, p.stderr.String())
	case <-t.C:
		p.stop()
		return nil, fmt.Errorf("%s: no ready line within 30s:\n%s", bin, p.stderr.String())
	case <-ctx.Done():
		p.stop()
		return nil, ctx.Err()
	}
}

// stop ends a server this tool started with SIGINT (so a CPU profile is
// written), then SIGKILL after 10 s.
func (p *serverProc) stop() {
	if p.cmd == nil {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.exited:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.exited
	}
}

// memProfile has a server started with OCM_MEMPROFILE=path write its
// heap profile and memory statistics now (SIGUSR1), and waits for them.
func (p *serverProc) memProfile(ctx context.Context, path string) error {
	_ = os.Remove(path + ".txt")
	if err := p.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		return err
	}
	for range 100 {
		if st, err := os.Stat(path + ".txt"); err == nil && st.Size() > 0 {
			return nil
		}
		if !retry.Sleep(ctx, 100*time.Millisecond) {
			return ctx.Err()
		}
	}
	return fmt.Errorf("no %s.txt within 10s", path)
}

// rss returns the server's resident set in bytes (VmRSS), 0 without a pid.
func (p *serverProc) rss() (int64, error) {
	if p.pid == 0 {
		return 0, nil
	}
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmRSS in /proc status")
}

// cpuWindow measures the server's CPU per wall second from start to done.
type cpuWindow struct {
	m *lab.CPUMeter // nil without a pid, or when /proc could not be read
}

func (p *serverProc) cpuStart() cpuWindow {
	if p.pid == 0 {
		return cpuWindow{}
	}
	m, _ := lab.StartCPUMeter(p.pid)
	return cpuWindow{m: m}
}

// done returns cores used on average (-1 without a pid).
func (w cpuWindow) done() float64 {
	if w.m == nil {
		return -1
	}
	v, err := w.m.PerWall()
	if err != nil {
		return -1
	}
	return v
}

// get fetches an API path and returns the body and how long it took.
func (p *serverProc) get(ctx context.Context, path string) ([]byte, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.http+path, nil)
	if err != nil {
		return nil, 0, err
	}
	t0 := time.Now()
	resp, err := apiClient.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	d := time.Since(t0)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s: %s", path, resp.Status, bytes.TrimSpace(b))
	}
	return b, d, err
}

// apiClient bounds every API call: a server out of descriptors accepts none.
var apiClient = &http.Client{Timeout: 30 * time.Second}

// tail keeps the last lines of the server's log for error messages.
type tail struct {
	mu    sync.Mutex
	lines []string
}

func (t *tail) add(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.lines) >= 20 {
		t.lines = t.lines[1:]
	}
	t.lines = append(t.lines, s)
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}
