package lab

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports (the kernel fixes it for user space), so a
// window of a few seconds measures CPU to within a percent or so.
const clockTick = 10 * time.Millisecond

// CPUTime returns the user plus system CPU time the process has used.
func (p *Proc) CPUTime() (time.Duration, error) { return CPUTime(p.PID()) }

// CPUTime reads utime+stime of pid (0: this process) from /proc, summed
// over all its threads.
func CPUTime(pid int) (time.Duration, error) {
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

// CPUMeter measures a process's CPU seconds per wall second over a window.
type CPUMeter struct {
	pid   int
	cpu0  time.Duration
	wall0 time.Time
}

// StartCPUMeter starts measuring pid (0: this process).
func StartCPUMeter(pid int) (*CPUMeter, error) {
	c, err := CPUTime(pid)
	if err != nil {
		return nil, err
	}
	return &CPUMeter{pid: pid, cpu0: c, wall0: time.Now()}, nil
}

// PerWall returns CPU seconds used per wall second since the meter started.
func (m *CPUMeter) PerWall() (float64, error) {
	c, err := CPUTime(m.pid)
	if err != nil {
		return 0, err
	}
	return (c - m.cpu0).Seconds() / time.Since(m.wall0).Seconds(), nil
}

// LoadAverage returns the host's one-minute load average, or -1: context
// for CPU figures taken on a machine shared with other work.
func LoadAverage() float64 {
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
