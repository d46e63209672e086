// Command scale loads one ocm-server with N relays of one stream over real
// TCP, from one process that speaks the protocol as ocm-relay does, and
// measures what sizing a deployment needs: joins per second and the
// candidate decision latency while relays join B at a time, "full"
// refusals, the server's memory per relay and CPU (joining, steady), the
// tree API's time and size, and the repair of a relay with about 1,000
// descendants. `make bench-scale` runs it; see --help.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/ocm-overlay/ocm/bench/scale/sim"
	ocmrelay "github.com/ocm-overlay/ocm/internal/relay"
)

// options are the command's flags.
type options struct {
	relays     int
	batches    []int
	capacity   int
	bin        string
	server     string
	httpAddr   string
	serverPID  int
	serverArgs []string
	// serverCPUs and loadCPUs pin the server and the load process (CPU
	// lists; "": not pinned).
	serverCPUs, loadCPUs string
	steady               time.Duration
	// improveWindow follows steady: the relays' first improvement round.
	improveWindow time.Duration
	improveEvery  time.Duration
	joinTimeout   time.Duration
	kill          int
	out           string
	cpuProfile    string
	memProfile    string
	stream        string
	// The tree-quality simulator (bench/scale/sim).
	sim       bool
	simOnly   bool
	simRelays int
	simSeed   uint64
	simSweep  []int
	simAdapt  float64
	md, svg   string
	islands   sim.IslandOptions
}

const usage = `Usage: go run ./bench/scale [flags]

Loads an ocm-server with --relays relays of one stream, each a real TCP
connection from this process speaking the OCM protocol as ocm-relay does
(hello, get_candidates, joined, heartbeats and reports on the intervals the
welcome gives, a rejoin on reconnect; a relay refused everywhere asks for
candidates again), --batch of them joining at a time. For each batch size
it starts a fresh ocm-server (built from this module unless --bin or
--server) and reports:

  joins_per_s          relays joined per second over the whole join phase
  decision_ms_p50/p99  get_candidates round trip seen by the relays (rtt):
                       on one host it includes waiting for the cores this
                       process shares with the server
  server_decision_ms_p50/p99, server_queue_ms_p50/p99
                       the server's share of it, from its histograms
                       (ocm_candidate_decision_seconds: the decision in its
                       state goroutine; ocm_candidate_queue_seconds: the wait
                       for that goroutine); -1 with --server
  full_per_join        "full" refusals per successful join
  failed               relays that had no parent within --join-timeout
  bytes_per_node       server RSS growth per relay (VmRSS, steady state)
  cpu_joining          server cores used while joining (and this process's:
                       on one host, both share the cores)
  steady_cpu_fraction  server cores used in steady state (--steady window:
                       reports and heartbeats; the relays' improvement rounds
                       in it are counted in improve_rounds_steady)
  improve_first_round_cpu_fraction, improve_first_round_rounds
                       server cores in the --improve-window after it, which
                       holds the relays' first improvement round (their
                       busiest: the wait doubles after it), and the rounds
  improve_round_cpu_ms, steady_cpu_fraction_settled
                       one round's server CPU time from the two windows,
                       and the steady state once every relay asks once per
                       5 min (ocm-relay's longest wait)
  tree_api_ms          GET /api/v1/tree?stream=S (and its size in bytes)
  recovery_ms_1000_descendants
                       the relay with the fewest descendants, at least
                       --kill, disconnects: time until every orphan (its
                       children; their subtrees stay) has joined again

as a table on stdout and JSON in --out. The process needs about one file
descriptor per relay, and the server as many (see the README).

Then (unless --sim=false) the tree-quality simulator runs --sim-relays
relays in process through the real selection and tree code on a latency
map (no sockets; deterministic for --sim-seed; --sim-only runs it alone:
a few minutes at 10,000, one more with --islands 100) and adds, for the
selection as shipped after --sim-adapt minutes of the relays' improvement
rounds (default; default_at_join is the same tree before any round), a
relay taking a random eligible candidate (random), the selection without
adaptation (no paths, displacement nor improvement rounds) and that one
without the server's near candidates:

  avg_depth, max_depth   levels below the origin (target: avg < log2 N)
  avg_stretch, p95       RTT along the tree over direct RTT to the origin
  cross_region_edges     share of parent-child edges joining two regions
  origin_fanout, load_jain, relays_full, relays_idle
  recovery               5% of relays killed at once, per policy: time
                         until every survivor is attached, edges kept,
                         depth after
  sweep                  depth and stretch for --sim-sweep sizes
  islands                with --islands N: N regional servers whose origin
                         is a relay of the origin's tree, end-to-end depth,
                         stretch and recovery (a million viewers at
                         --islands 100 --islands-relays 10000)

and writes --md (tables) and --svg (depth and stretch against N).

Flags:
`

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if err == flag.ErrHelp {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "scale:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	batch := "64,1024"
	var serverArgs string
	fs.IntVar(&o.relays, "relays", 10000, "relays to connect")
	fs.StringVar(&batch, "batch", batch, "comma-separated batch sizes: relays joining at a time (one run, one fresh server, each)")
	fs.IntVar(&o.capacity, "capacity", 4, "each relay's capacity (max children), ocm-relay's default")
	fs.StringVar(&o.bin, "bin", "", "directory holding a built ocm-server (default: build it from this module)")
	fs.StringVar(&o.server, "server", "", "OCM address of a running ocm-server to load instead (then --http, and --server-pid for memory and CPU)")
	fs.StringVar(&o.httpAddr, "http", "", "HTTP API address of the --server")
	fs.IntVar(&o.serverPID, "server-pid", 0, "pid of the --server, to read its memory and CPU from /proc")
	fs.StringVar(&o.serverCPUs, "server-cpus", "", "run the server on these CPUs only (a list such as 0 or 0-1; \"\": any), so that the load process does not take its cores")
	fs.StringVar(&o.loadCPUs, "load-cpus", "", "run this load process on these CPUs only (\"\": any): with --server-cpus, the relays' round trip is the server's and the network's, not this process's wait for a core")
	fs.StringVar(&serverArgs, "server-args", "", "extra ocm-server flags, space-separated (e.g. \"--heartbeat 1s\")")
	fs.DurationVar(&o.steady, "steady", 20*time.Second, "steady-state window measured after every relay joined (at least one report interval, and it should end before the relays' first improvement round, ocm-relay's --improve-every after their join, less a quarter)")
	fs.DurationVar(&o.improveEvery, "improve-every", ocmrelay.DefaultImproveEvery, "the relays' improvement rounds, as ocm-relay's --improve-every (0: none)")
	fs.DurationVar(&o.improveWindow, "improve-window", 20*time.Second, "window measured after --steady, in which the relays' first improvement rounds fall (0: none)")
	fs.DurationVar(&o.joinTimeout, "join-timeout", time.Minute, "a relay with no parent after this has failed to join")
	fs.IntVar(&o.kill, "kill", 1000, "the relay disconnected for the repair is the one with the fewest descendants, at least this many (0: skip)")
	fs.StringVar(&o.out, "out", "", "write the JSON report here too (default: stdout only)")
	fs.StringVar(&o.cpuProfile, "cpuprofile", "", "CPU profile of the server, written to FILE-bBATCH (OCM_CPUPROFILE)")
	fs.StringVar(&o.memProfile, "memprofile", "", "heap profile of the server at its end (steady state), written to FILE-bBATCH, with its memory statistics in FILE-bBATCH.txt (OCM_MEMPROFILE)")
	fs.StringVar(&o.stream, "stream", "rtsp://127.0.0.1:8554/scale", "the stream every relay joins")
	sweep := "100,300,1000,3000,10000"
	fs.BoolVar(&o.sim, "sim", true, "run the tree-quality simulator after the load")
	fs.BoolVar(&o.simOnly, "sim-only", false, "run only the simulator (no server, no sockets)")
	fs.IntVar(&o.simRelays, "sim-relays", 10000, "relays in the simulator")
	fs.Uint64Var(&o.simSeed, "sim-seed", 1, "the simulator's random seed (same seed, same figures)")
	fs.Float64Var(&o.simAdapt, "sim-adapt", sim.DefaultAdaptMinutes, "minutes of the relays' improvement rounds (simulated time) before the default tree is measured")
	fs.StringVar(&sweep, "sim-sweep", sweep, "comma-separated relay counts for the depth and stretch plot (\"\": none)")
	fs.IntVar(&o.islands.Islands, "islands", 0, "also model this many regional servers (islands) under the origin's, --islands-relays each (0: skip)")
	fs.IntVar(&o.islands.PerIsland, "islands-relays", 10000, "relays per island")
	fs.IntVar(&o.islands.Sample, "islands-sample", 0, "islands simulated, spread over them; the rest assumed alike (0: all)")
	fs.StringVar(&o.md, "md", "", "write the report as Markdown tables here")
	fs.StringVar(&o.svg, "svg", "", "write the plot of depth and stretch against relays here (SVG)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if strings.TrimSpace(sweep) != "" {
		for _, b := range strings.Split(sweep, ",") {
			n, err := strconv.Atoi(strings.TrimSpace(b))
			if err != nil || n < 10 {
				return o, fmt.Errorf("--sim-sweep %q: want integers >= 10 separated by commas", sweep)
			}
			o.simSweep = append(o.simSweep, n)
		}
	}
	for _, l := range []string{o.serverCPUs, o.loadCPUs} {
		if _, err := parseCPUs(l); err != nil {
			return o, err
		}
	}
	if !(o.simAdapt > 0 && o.simAdapt <= 24*60) {
		return o, fmt.Errorf("--sim-adapt %v: want minutes above 0, at most a day", o.simAdapt)
	}
	if o.simRelays < 10 {
		return o, fmt.Errorf("--sim-relays must be >= 10")
	}
	if o.islands.Islands < 0 || o.islands.Sample < 0 || o.islands.Islands > 0 && o.islands.PerIsland < 10 {
		return o, fmt.Errorf("--islands and --islands-sample must be >= 0, --islands-relays >= 10")
	}
	if o.simOnly {
		o.sim = true
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	for _, b := range strings.Split(batch, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(b))
		if err != nil || n < 1 {
			return o, fmt.Errorf("--batch %q: want positive integers separated by commas", batch)
		}
		o.batches = append(o.batches, n)
	}
	if o.relays < 1 || o.capacity < 1 {
		return o, fmt.Errorf("--relays and --capacity must be >= 1")
	}
	if o.server != "" && o.httpAddr == "" {
		return o, fmt.Errorf("--server needs --http (the API address)")
	}
	o.serverArgs = strings.Fields(serverArgs)
	return o, nil
}

// report is the JSON output: the first batch's figures at the top level
// (the keys bench/scale.json shares with the tree-quality simulator), every
// batch's under runs, and the simulator's keys (absent when not run).
// The load's are embedded through a pointer so that --sim-only leaves
// them out; encoding/json decodes an embedded pointer only through an
// exported name, hence Load.
type report struct {
	*Load
	Runs []result `json:"runs,omitempty"`
	*sim.Report
}

// Load is result, under a name encoding/json can set.
type Load = result

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	var rep report
	if set, _ := parseCPUs(o.loadCPUs); set != nil {
		if err := pinSelf(set); err != nil {
			return fmt.Errorf("--load-cpus %s: %w", o.loadCPUs, err)
		}
	}
	if !o.simOnly {
		if err := runLoad(ctx, o, &rep, stdout, stderr); err != nil {
			return err
		}
	}
	if o.sim {
		fmt.Fprintf(stderr, "scale: simulator, %d relays, seed %d\n", o.simRelays, o.simSeed)
		start := time.Now()
		so := sim.Options{Relays: o.simRelays, Seed: o.simSeed, Sweep: o.simSweep, AdaptMinutes: o.simAdapt}
		if o.islands.Islands > 0 {
			so.Islands = &o.islands
		}
		rep.Report = sim.Run(so)
		fmt.Fprintf(stderr, "scale: simulator done in %v\n", time.Since(start).Round(time.Millisecond))
		printQuality(stdout, rep.Report)
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s\n", js)
	if o.out != "" {
		if err := os.WriteFile(o.out, append(js, '\n'), 0o644); err != nil {
			return err
		}
	}
	if o.md != "" {
		var b bytes.Buffer
		writeMarkdown(&b, &rep)
		if err := os.WriteFile(o.md, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if o.svg != "" && rep.Report != nil {
		var b bytes.Buffer
		if err := sim.WriteSVG(&b, rep.Sweep); err != nil {
			return err
		}
		if err := os.WriteFile(o.svg, b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// runLoad is the load part: one fresh server per batch size.
func runLoad(ctx context.Context, o options, rep *report, stdout, stderr io.Writer) error {
	bin := ""
	if o.server == "" {
		dir := o.bin
		if dir == "" {
			tmp, err := os.MkdirTemp("", "bench-scale-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			dir = tmp
			fmt.Fprintln(stderr, "scale: building ocm-server")
			if _, err := buildServer(ctx, dir); err != nil {
				return err
			}
		}
		bin = dir + "/ocm-server"
	}
	for _, b := range o.batches {
		fmt.Fprintf(stderr, "scale: %d relays, %d at a time\n", o.relays, b)
		r, err := runOnce(ctx, o, bin, b, stderr)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			// What was measured before the failure is kept.
			r.Error = err.Error()
			fmt.Fprintf(stderr, "scale: batch %d: %v\n", b, err)
		}
		printTable(stderr, []result{r})
		rep.Runs = append(rep.Runs, r)
	}
	rep.Load = &rep.Runs[0]
	printTable(stdout, rep.Runs)
	return nil
}

func printTable(w io.Writer, rs []result) {
	fmt.Fprintf(w, "%7s %6s %7s %8s %9s %9s %11s %11s %7s %9s %9s %11s %9s %10s %12s\n",
		"relays", "batch", "failed", "joins/s", "rtt p50", "rtt p99", "srv dec p99", "srv q p99", "full/j", "B/relay",
		"cpu join", "cpu steady", "tree ms", "tree KB", "repair ms")
	for _, r := range rs {
		fmt.Fprintf(w, "%7d %6d %7d %8.0f %9.2f %9.2f %11.3f %11.2f %7.2f %9.0f %9.2f %11.3f %9.1f %10.0f %7.0f (%d)\n",
			r.Relays, r.Batch, r.Failed, r.JoinsPerS, r.DecisionP50, r.DecisionP99, r.ServerDecisionP99,
			r.ServerQueueP99, r.FullPerJoin, r.BytesPerNode,
			r.CPUJoining, r.SteadyCPU, r.TreeAPIMs, float64(r.TreeAPIBytes)/1024, r.RecoveryMs, r.RecoveryDescendants)
	}
}
