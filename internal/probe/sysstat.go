package probe

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// Where the kernel's counters are read from.
const (
	ProcStat    = "/proc/stat"
	ProcMeminfo = "/proc/meminfo"
)

// DefaultCPUInterval is CPUSampler's background sampling period.
const DefaultCPUInterval = time.Second

// CPUTimes are the aggregate ("cpu ") counters of /proc/stat, in ticks.
type CPUTimes struct {
	Idle  uint64 // idle + iowait
	Total uint64 // user + nice + system + idle + iowait + irq + softirq + steal
}

// ParseProcStat reads the aggregate CPU line of /proc/stat's text. Guest
// time is already counted in user and nice, so it is left out.
func ParseProcStat(text []byte) (CPUTimes, error) {
	sc := bufio.NewScanner(bytes.NewReader(text))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 || string(f[0]) != "cpu" {
			continue
		}
		if len(f) < 5 {
			return CPUTimes{}, fmt.Errorf("/proc/stat: cpu line has %d fields", len(f)-1)
		}
		var v [8]uint64
		for i := 0; i < len(v) && i+1 < len(f); i++ {
			n, err := strconv.ParseUint(string(f[i+1]), 10, 64)
			if err != nil {
				return CPUTimes{}, fmt.Errorf("/proc/stat: cpu field %d: %w", i+1, err)
			}
			v[i] = n
		}
		var t CPUTimes
		for _, n := range v {
			t.Total += n
		}
		t.Idle = v[3] + v[4]
		return t, nil
	}
	if err := sc.Err(); err != nil {
		return CPUTimes{}, fmt.Errorf("/proc/stat: %w", err)
	}
	return CPUTimes{}, errors.New("/proc/stat: no cpu line")
}

// BusyBetween returns the busy fraction (0..1) of all CPUs between two
// readings; 0 if no time passed. Counters that went backwards (iowait
// does on some kernels) are clamped rather than trusted.
func BusyBetween(prev, cur CPUTimes) float64 {
	if cur.Total <= prev.Total {
		return 0
	}
	total := float64(cur.Total - prev.Total)
	var idle float64
	if cur.Idle > prev.Idle {
		idle = float64(cur.Idle - prev.Idle)
	}
	return min(1, max(0, 1-idle/total))
}

// ParseMemAvailable returns MemAvailable from /proc/meminfo's text, in
// bytes. Kernels older than 3.14 lack it: MemFree + Buffers + Cached is
// the usual stand-in then.
func ParseMemAvailable(text []byte) (uint64, error) {
	fields := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		switch k := string(name); k {
		case "MemAvailable", "MemFree", "Buffers", "Cached":
			f := bytes.Fields(rest)
			if len(f) == 0 {
				return 0, fmt.Errorf("/proc/meminfo: %s has no value", k)
			}
			n, err := strconv.ParseUint(string(f[0]), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: %s: %w", k, err)
			}
			if len(f) > 1 && string(f[1]) == "kB" {
				n *= 1024
			}
			fields[k] = n
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("/proc/meminfo: %w", err)
	}
	if n, ok := fields["MemAvailable"]; ok {
		return n, nil
	}
	if n, ok := fields["MemFree"]; ok {
		return n + fields["Buffers"] + fields["Cached"], nil
	}
	return 0, errors.New("/proc/meminfo: no MemAvailable or MemFree")
}

// FreeMemory returns the memory available to new work, in bytes
// (MemAvailable of /proc/meminfo), 0 if unknown (no /proc).
func FreeMemory() uint64 {
	b, err := os.ReadFile(ProcMeminfo)
	if err != nil {
		return 0
	}
	n, _ := ParseMemAvailable(b)
	return n
}

// CPUSampler measures how busy the machine's CPUs are from /proc/stat.
// Either call Sample yourself (each call returns the busy fraction since
// the previous one) or Start it and read Busy, updated every Interval.
type CPUSampler struct {
	Path     string        // ProcStat if empty
	Interval time.Duration // Start's sampling period, DefaultCPUInterval if <= 0

	mu   sync.Mutex
	prev CPUTimes
	busy float64
	err  error

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// NewCPUSampler returns a sampler already sampling /proc/stat every
// DefaultCPUInterval; Close it. Where /proc/stat cannot be read, Busy
// stays 0 and Err says why.
func NewCPUSampler() *CPUSampler {
	s := &CPUSampler{}
	_ = s.Start() // kept in Err
	return s
}

// Sample reads the counters and returns the busy fraction since the
// previous Sample (since boot on the first call).
func (s *CPUSampler) Sample() (float64, error) {
	path := s.Path
	if path == "" {
		path = ProcStat
	}
	b, err := os.ReadFile(path)
	var cur CPUTimes
	if err == nil {
		cur, err = ParseProcStat(b)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.err = err
	if err != nil {
		return s.busy, err
	}
	s.busy = BusyBetween(s.prev, cur)
	s.prev = cur
	return s.busy, nil
}

// Busy returns the latest busy fraction (0 before the first sample).
func (s *CPUSampler) Busy() float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.busy
}

// Err returns the error of the latest sample, nil if it succeeded.
func (s *CPUSampler) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Start takes a first sample and then samples every Interval until
// Close. If the first sample fails (e.g. no /proc) its error is returned
// and nothing is started.
func (s *CPUSampler) Start() error {
	if s.stop != nil {
		return errors.New("cpu sampler already started")
	}
	if s.Interval <= 0 {
		s.Interval = DefaultCPUInterval
	}
	if _, err := s.Sample(); err != nil {
		return err
	}
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.done)
		t := time.NewTicker(s.Interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				_, _ = s.Sample() // kept in Err
			}
		}
	}()
	return nil
}

// Close stops the background sampling and waits for it; idempotent.
func (s *CPUSampler) Close() {
	s.once.Do(func() {
		if s.stop == nil {
			return
		}
		close(s.stop)
		<-s.done
	})
}
