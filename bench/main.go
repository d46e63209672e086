// Command bench is `make bench`: it runs every registered case against the
// built binaries, measures a floor in the same run where a case has one, and
// prints a table and a JSON report (also written to .bench/report.json). The
// tools run, and the players play, through internal/lab, as in the system
// tests.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/ocm-overlay/ocm/internal/lab"
)

// options are what every case gets.
type options struct {
	Bin      string        // directory holding the built tools
	Duration time.Duration // how long each measured run lasts
	Tools    lab.Tools     // Bin, for internal/lab
	// Lab kills, when the case returns, every tool it started and left
	// running (on an error path, or at Ctrl-C).
	Lab *lab.Cleanups
}

// result is one row of the report: a name and its measured values.
type result struct {
	Case    string         `json:"case"`
	Metrics map[string]any `json:"metrics"`
	Notes   []string       `json:"notes,omitempty"`
}

type benchCase struct {
	name string
	run  func(ctx context.Context, o options) ([]result, error)
}

var cases []benchCase

// register adds a case; each bench file calls it from init.
func register(name string, run func(ctx context.Context, o options) ([]result, error)) {
	cases = append(cases, benchCase{name, run})
}

func main() {
	var o options
	var only string
	flag.StringVar(&o.Bin, "bin", "bin", "directory with the built tools")
	flag.DurationVar(&o.Duration, "duration", 5*time.Second, "length of each measured run")
	flag.StringVar(&only, "run", "", "comma-separated case names to run (default all)")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	bin, err := filepath.Abs(o.Bin)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	o.Bin = bin
	o.Tools = lab.Tools(bin)

	sort.Slice(cases, func(i, j int) bool { return cases[i].name < cases[j].name })
	var all []result
	failed := false
	for _, c := range cases {
		if only != "" && !contains(strings.Split(only, ","), c.name) {
			continue
		}
		progressf("running %s", c.name)
		o.Lab = &lab.Cleanups{}
		rs, err := c.run(ctx, o)
		o.Lab.Run()
		if err != nil {
			progressf("%s: %v", c.name, err)
			failed = true
			all = append(all, result{Case: c.name, Notes: []string{"error: " + err.Error()}})
			continue
		}
		for _, r := range rs {
			printResult(r)
		}
		all = append(all, rs...)
	}

	_ = os.MkdirAll(".bench", 0o755)
	data, _ := json.MarshalIndent(all, "", "  ")
	_ = os.WriteFile(filepath.Join(".bench", "report.json"), data, 0o644)
	fmt.Println(string(data))
	if failed {
		os.Exit(1)
	}
}

// putHost puts this machine's CPU count and load average into m: every
// process of a case shares them, so they frame its figures.
func putHost(m map[string]any) {
	m["host_cpus"] = runtime.NumCPU()
	m["host_load1"] = lab.LoadAverage()
}

// progressf writes a line of the bench's progress to stderr (stdout
// carries the report).
func progressf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func printResult(r result) {
	keys := make([]string, 0, len(r.Metrics))
	for k := range r.Metrics {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	fmt.Fprintf(os.Stderr, "== %s\n", r.Case)
	for _, k := range keys {
		fmt.Fprintf(os.Stderr, "   %-36s %v\n", k, r.Metrics[k])
	}
	for _, n := range r.Notes {
		fmt.Fprintf(os.Stderr, "   note: %s\n", n)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
