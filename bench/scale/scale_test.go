package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

// The load tool at a small size, against a freshly built ocm-server, so
// it cannot rot: every relay joins, the tree holds them all, the relay
// disconnected for the repair had descendants and each of its children
// joined again. Figures are logged, never asserted.
func TestScaleSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs ocm-server")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	if _, err := buildServer(ctx, dir); err != nil {
		t.Fatal(err)
	}
	args := []string{"--relays", "300", "--batch", "64,128", "--bin", dir, "--steady", "1s",
		"--improve-every", "2s", "--improve-window", "3s", "--kill", "30", "--join-timeout", "30s", "--sim=false"}
	args = append(args, "--server-cpus", "0") // taskset runs it (the test process is not pinned: other tests follow)
	o, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out, log bytes.Buffer
	if err := run(ctx, o, &out, &log); err != nil {
		t.Fatalf("%v\n%s", err, log.String())
	}
	t.Logf("\n%s", out.String())
	js := out.String()[strings.Index(out.String(), "{"):]
	var rep report
	if err := json.Unmarshal([]byte(js), &rep); err != nil {
		t.Fatalf("report: %v", err)
	}
	if len(rep.Runs) != 2 || rep.Relays != 300 || rep.Batch != 64 {
		t.Fatalf("report has %d runs, top level %d relays batch %d", len(rep.Runs), rep.Relays, rep.Batch)
	}
	for _, r := range rep.Runs {
		if r.Joined != 300 || r.Failed != 0 {
			t.Errorf("batch %d: %d joined, %d failed", r.Batch, r.Joined, r.Failed)
		}
		if r.Decisions < r.Joined || r.TreeAPIBytes == 0 || r.BytesPerNode <= 0 {
			t.Errorf("batch %d: %d decisions, tree %d bytes, %v bytes per node", r.Batch, r.Decisions, r.TreeAPIBytes, r.BytesPerNode)
		}
		// The server's share of the round trip is read from its
		// histograms: present, and not more than the round trip.
		if r.ServerDecisionP99 <= 0 || r.ServerQueueP99 < 0 || r.ServerDecisionP50 > r.DecisionP99 {
			t.Errorf("batch %d: server decision p50/p99 %v/%v ms, queue p99 %v ms, round trip p99 %v ms",
				r.Batch, r.ServerDecisionP50, r.ServerDecisionP99, r.ServerQueueP99, r.DecisionP99)
		}
		if r.ImproveRounds == 0 {
			t.Errorf("batch %d: no improvement round in the window after the steady one", r.Batch)
		}
		if r.RecoveryDescendants == 0 || r.RecoveryOrphans == 0 || r.RecoveryRejoined != r.RecoveryOrphans {
			t.Errorf("batch %d: repair of a relay with %d descendants: %d of %d orphans rejoined",
				r.Batch, r.RecoveryDescendants, r.RecoveryRejoined, r.RecoveryOrphans)
		}
	}
}

// --help prints the usage and the figures it reports; bad flags are
// named.
func TestScaleFlags(t *testing.T) {
	var help bytes.Buffer
	if _, err := parseFlags([]string{"--help"}, &help); err == nil || !strings.Contains(help.String(), "joins_per_s") {
		t.Fatalf("--help: %v\n%s", err, help.String())
	}
	for _, args := range [][]string{{"--batch", "64,x"}, {"--relays", "0"}, {"--server", "127.0.0.1:1"}, {"extra"},
		{"--server-cpus", "x"}, {"--load-cpus", "2-1"}, {"--load-cpus", "-1"}} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	if set, err := parseCPUs("0,2-3"); err != nil || set.Count() != 3 || !set.IsSet(2) || set.IsSet(1) {
		t.Errorf("CPU list 0,2-3: %v %v", set, err)
	}
}
