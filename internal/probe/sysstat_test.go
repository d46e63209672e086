package probe

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const procStat = `cpu  4705 150 1120 16250 520 0 30 5 100 0
cpu0 2352 75 560 8125 260 0 15 2 50 0
cpu1 2353 75 560 8125 260 0 15 3 50 0
intr 114930548 113199788 3 0 5 263 0 4 [... lots more numbers ...]
ctxt 1990473
btime 1062191376
processes 2915
procs_running 1
procs_blocked 0
`

// parseCase is a text, what parsing it gives, and whether it must fail.
type parseCase[T comparable] struct {
	name    string
	text    string
	want    T
	wantErr bool
}

// checkParsed parses each case's text in a subtest named after it: it
// must fail exactly when wantErr, and give want.
func checkParsed[T comparable](t *testing.T, parse func([]byte) (T, error), cases []parseCase[T]) {
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse([]byte(tt.text))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	checkParsed(t, ParseProcStat, []parseCase[CPUTimes]{
		{"full", procStat, CPUTimes{Idle: 16250 + 520, Total: 4705 + 150 + 1120 + 16250 + 520 + 0 + 30 + 5}, false},
		{"old kernel, four fields", "cpu 10 0 10 80\n", CPUTimes{Idle: 80, Total: 100}, false},
		{"cpu line not first", "intr 1 2\ncpu 1 1 1 1 1 1 1 1\n", CPUTimes{Idle: 2, Total: 8}, false},
		{"no cpu line", "cpu0 1 2 3 4\nintr 5\n", CPUTimes{}, true},
		{"too few fields", "cpu 1 2 3\n", CPUTimes{}, true},
		{"not a number", "cpu 1 2 x 4 5\n", CPUTimes{}, true},
		{"negative", "cpu 1 2 -3 4 5\n", CPUTimes{}, true},
		{"empty", "", CPUTimes{}, true},
	})
}

func TestBusyBetween(t *testing.T) {
	tests := []struct {
		name      string
		prev, cur CPUTimes
		want      float64
	}{
		{"quarter busy", CPUTimes{Idle: 100, Total: 200}, CPUTimes{Idle: 175, Total: 300}, 0.25},
		{"all busy", CPUTimes{Idle: 100, Total: 200}, CPUTimes{Idle: 100, Total: 300}, 1},
		{"all idle", CPUTimes{Idle: 100, Total: 200}, CPUTimes{Idle: 200, Total: 300}, 0},
		{"no time passed", CPUTimes{Idle: 100, Total: 200}, CPUTimes{Idle: 100, Total: 200}, 0},
		{"counters went back", CPUTimes{Idle: 100, Total: 200}, CPUTimes{Idle: 90, Total: 100}, 0},
		{"idle went back (iowait)", CPUTimes{Idle: 100, Total: 200}, CPUTimes{Idle: 95, Total: 300}, 1},
		{"since boot", CPUTimes{}, CPUTimes{Idle: 30, Total: 40}, 0.25},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := BusyBetween(tt.prev, tt.cur); math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseMemAvailable(t *testing.T) {
	checkParsed(t, ParseMemAvailable, []parseCase[uint64]{
		{"modern", "MemTotal:       16314248 kB\nMemFree:          532124 kB\nMemAvailable:    8123456 kB\nBuffers:          100000 kB\n", 8123456 * 1024, false},
		{"old kernel", "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 20 kB\nCached: 30 kB\n", 150 * 1024, false},
		{"no unit", "MemAvailable: 4096\n", 4096, false},
		{"garbage value", "MemAvailable: lots kB\n", 0, true},
		{"missing", "MemTotal: 1000 kB\n", 0, true},
		{"empty value", "MemAvailable:\n", 0, true},
	})
}

func TestCPUSampler(t *testing.T) {
	path := filepath.Join(t.TempDir(), "stat")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("cpu 10 0 10 80 0 0 0 0\n")
	s := &CPUSampler{Path: path}
	if got, err := s.Sample(); err != nil || math.Abs(got-0.2) > 1e-9 {
		t.Fatalf("first sample = %v, %v; want 0.2 since boot", got, err)
	}
	write("cpu 70 0 10 120 0 0 0 0\n") // +60 busy, +40 idle
	if got, err := s.Sample(); err != nil || math.Abs(got-0.6) > 1e-9 {
		t.Fatalf("second sample = %v, %v; want 0.6", got, err)
	}
	if got := s.Busy(); math.Abs(got-0.6) > 1e-9 {
		t.Errorf("Busy = %v, want 0.6", got)
	}
	write("garbage\n")
	if got, err := s.Sample(); err == nil || math.Abs(got-0.6) > 1e-9 {
		t.Errorf("bad sample = %v, %v; want the previous value and an error", got, err)
	}
	if s.Err() == nil {
		t.Error("Err() = nil after a bad sample")
	}
}

func TestCPUSamplerStart(t *testing.T) {
	if _, err := os.Stat(ProcStat); err != nil {
		t.Skip("no /proc/stat")
	}
	s := &CPUSampler{Interval: 10 * time.Millisecond}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	if b := s.Busy(); b < 0 || b > 1 {
		t.Errorf("Busy = %v, want 0..1", b)
	}
	s.Close()
	s.Close()
	if err := (&CPUSampler{Path: filepath.Join(t.TempDir(), "none")}).Start(); err == nil {
		t.Error("Start with a missing file succeeded")
	}
	if m := FreeMemory(); m == 0 {
		t.Error("FreeMemory = 0")
	}
	ns := NewCPUSampler()
	if ns.Err() != nil {
		t.Error(ns.Err())
	}
	ns.Close()
	ns.Close()
}
