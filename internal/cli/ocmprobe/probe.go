package ocmprobe

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/probe"
	"github.com/ocm-overlay/ocm/internal/streamurl"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// probeOriginCapacity is --origin-capacity's default, the same as
// ocm-server's --origin-capacity.
const probeOriginCapacity = 4

// probeMaxLine bounds one stdin line.
const probeMaxLine = 64 << 10

// probeOptions are ocm-probe's flags.
type probeOptions struct {
	stream         string
	timeout        time.Duration
	output         string
	explain        bool
	origin         string
	originCapacity int
	prefer         string
	w              probe.Weights
}

// NewCommand returns the ocm-probe command.
func NewCommand() *cobra.Command {
	o := &probeOptions{w: probe.DefaultWeights()}
	cmd := &cobra.Command{
		Use:   "ocm-probe [HOST:PORT...]",
		Short: "Probe overlay relays and show their RTT and load, or rank them as ocm-relay would",
		Long: `ocm-probe sends the UDP probe ocm-relay answers (default port 7072) to each
peer and prints the round-trip time and what the peer says about itself:
node id, clients, level in --stream's tree (- if it does not relay it),
cores, CPU busy, free memory, willingness and free capacity.

Peers are the HOST:PORT arguments; with none (or "-"), JSON lines on stdin,
either {"addr":"HOST:PORT"} or a candidate as ocm-server offers it:
{"node":"n1","rtsp":"HOST:8554","probe":"HOST:7072","level":1,...}. A
candidate without a probe address, and the origin ({"node":"origin",...}
or --origin), is probed by an RTSP OPTIONS round trip instead: any RTSP
answer, even 404, means alive.

--explain ranks the peers as ocm-relay does when it picks a parent. Score,
lower is better:

  rtt_ms + W_path*path_ms + W_load*clients/capacity + W_level*level + W_cpu*cpu_busy

path_ms is a candidate's RTT along the tree from the origin, as ocm-server
offers it ("path_ms" in a stdin candidate; 0 otherwise, and for the origin):
rtt_ms + path_ms is where the stream would come from.

Rejected: no answer within --timeout, not willing, no free capacity, CPU at
or above --max-cpu, level at or above --max-level. When every candidate is
rejected and some only for --max-cpu, a relay takes the best of those as a
last resort, and so does the ranking. --prefer NODE ranks as a relay going
back under its old parent NODE after an ancestor failed: NODE first whenever
it is eligible, whatever its score. Every term is printed, with the reasons
and the winner: the parent a relay would pick.

Exit status: 0 if at least one peer answered, 1 otherwise. Unreachable
peers are listed as such; bad stdin lines are reported on stderr with their
line number and skipped.`,
		Example: `  # RTT and load of two relays
  ocm-probe 10.0.0.5:7072 10.0.0.6:7072

  # Their level in a stream, as JSON lines
  ocm-probe -o json --stream rtsp://ms:554/live 10.0.0.5:7072 10.0.0.6:7072

  # Which one would a relay pick, the origin included?
  ocm-probe --explain --stream rtsp://ms:554/live --origin ms:554 \
      10.0.0.5:7072 10.0.0.6:7072

  # The same with depth weighing more and a lower CPU ceiling
  ocm-probe --explain --stream rtsp://ms:554/live --w-level 20 --max-cpu 0.7 \
      10.0.0.5:7072 10.0.0.6:7072

  # Peers as JSON lines on stdin
  printf '%s\n' '{"addr":"10.0.0.5:7072"}' \
      '{"node":"origin","rtsp":"ms:554","clients":1,"capacity":4}' |
    ocm-probe --explain --stream rtsp://ms:554/live`,
		SilenceUsage:  true,
		SilenceErrors: true, // Main prints them
		RunE: func(cmd *cobra.Command, args []string) error {
			return runProbe(cmd, args, o)
		},
	}
	def := probe.DefaultWeights()
	f := cmd.Flags()
	f.StringVar(&o.stream, "stream", "", "stream whose level to ask for: its origin URL rtsp://MSHOST[:MSPORT]/MEDIA")
	f.DurationVar(&o.timeout, "timeout", probe.DefaultTimeout, "time a peer has to answer (one retransmission included)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table or json (one line per peer)")
	f.BoolVar(&o.explain, "explain", false, "rank the peers as ocm-relay would and show every score term (needs --stream)")
	f.StringVar(&o.prefer, "prefer", "", "with --explain: rank as a relay going back under its old parent NODE (first whenever eligible)")
	f.StringVar(&o.origin, "origin", "", "add the origin at HOST:PORT as a candidate (probed by RTSP OPTIONS)")
	f.IntVar(&o.originCapacity, "origin-capacity", probeOriginCapacity, "relays the origin accepts, for --origin and stdin origins without a capacity")
	f.Float64Var(&o.w.Path, "w-path", def.Path, "score weight of a candidate's path from the origin (path_ms)")
	f.Float64Var(&o.w.Load, "w-load", def.Load, "score weight of the load (clients/capacity)")
	f.Float64Var(&o.w.Level, "w-level", def.Level, "score weight of the level")
	f.Float64Var(&o.w.CPU, "w-cpu", def.CPU, "score weight of CPU busy (0..1)")
	f.Float64Var(&o.w.MaxCPU, "max-cpu", def.MaxCPU, "reject candidates at least this busy (0..1; above 1: no ceiling)")
	f.BoolVar(&o.w.Displace, "displace", true, "rank as a relay that relays: a full candidate offered for displacement (displace_ms) that this host is close enough to is eligible, as ocm-relay --willing does")
	f.IntVar(&o.w.MaxLevel, "max-level", def.MaxLevel, "reject candidates at this level or deeper")
	return cmd
}

func runProbe(cmd *cobra.Command, args []string, o *probeOptions) error {
	if err := o.validate(); err != nil {
		return err
	}
	stderr := cmd.ErrOrStderr()
	var peers []wire.Candidate
	useStdin := len(args) == 0
	for _, a := range args {
		if a == "-" {
			useStdin = true
			continue
		}
		if err := cli.CheckHostPort(a); err != nil {
			return err
		}
		peers = append(peers, wire.Candidate{Probe: a})
	}
	if useStdin {
		in := cmd.InOrStdin()
		if f, ok := in.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				fmt.Fprintln(stderr, "reading peers from stdin as JSON lines, end with Ctrl-D (see --help)")
			}
		}
		peers = append(peers, o.readPeers(in, func(line int, err error) {
			fmt.Fprintf(stderr, "%s: stdin line %d: %v\n", cmd.Name(), line, err)
		})...)
	}
	if o.origin != "" {
		peers = append(peers, wire.Candidate{Node: wire.OriginID, RTSP: o.origin, Capacity: o.originCapacity})
	}
	if len(peers) == 0 {
		return errors.New("no peers to probe: give HOST:PORT arguments or JSON lines on stdin")
	}

	w := o.w
	w.Timeout = o.timeout
	var answered int
	var err error
	if o.explain {
		sel := probe.Select(cmd.Context(), peers, o.stream, w, o.prefer)
		for _, c := range sel.Choices {
			if c.Result.Err == nil {
				answered++
			}
		}
		err = o.printExplain(cmd.OutOrStdout(), sel, w)
	} else {
		results := probe.ProbeAll(cmd.Context(), peers, o.stream, o.timeout)
		for _, r := range results {
			if r.Err == nil {
				answered++
			}
		}
		err = o.printResults(cmd.OutOrStdout(), peers, results)
	}
	if err != nil {
		return err
	}
	if answered == 0 {
		return fmt.Errorf("no peer answered within %v (%d probed)", o.timeout, len(peers))
	}
	return nil
}

func (o *probeOptions) validate() error {
	switch {
	case o.output != "table" && o.output != "json":
		return fmt.Errorf("--output %q: want table or json", o.output)
	case o.timeout <= 0:
		return errors.New("--timeout must be positive")
	case o.explain && o.stream == "":
		return errors.New("--explain needs --stream: a candidate's level is per stream")
	case o.prefer != "" && !o.explain:
		return errors.New("--prefer only changes the ranking of --explain")
	case o.w.Path < 0 || o.w.Load < 0 || o.w.Level < 0 || o.w.CPU < 0:
		return errors.New("--w-path, --w-load, --w-level and --w-cpu must not be negative")
	case o.w.MaxCPU <= 0:
		return errors.New("--max-cpu must be positive")
	case o.w.MaxLevel < 1:
		return errors.New("--max-level must be at least 1")
	case o.originCapacity < 0:
		return errors.New("--origin-capacity must not be negative")
	}
	if o.origin != "" {
		if err := cli.CheckHostPort(o.origin); err != nil {
			return fmt.Errorf("--origin: %w", err)
		}
	}
	if o.stream != "" {
		// Relays key their trees by the normalised origin URL; ask for that.
		org, err := streamurl.Parse(o.stream)
		if err != nil {
			return fmt.Errorf("--stream: %w", err)
		}
		o.stream = org.URL()
	}
	return nil
}

// probeInput is one stdin line: {"addr":...} or a wire.Candidate.
type probeInput struct {
	Addr string `json:"addr"`
	wire.Candidate
}

// readPeers reads JSON lines from r; bad lines go to bad and are skipped.
func (o *probeOptions) readPeers(r io.Reader, bad func(line int, err error)) []wire.Candidate {
	var out []wire.Candidate
	br := bufio.NewReader(r)
	for n := 1; ; n++ {
		line, err := cli.ReadLine(br, probeMaxLine)
		if err != nil && !errors.Is(err, io.EOF) {
			bad(n, err)
			if !errors.Is(err, cli.ErrLineTooLong) {
				return out // a read error: nothing more will come
			}
			continue
		}
		if len(line) > 0 && line[0] != '#' {
			c, perr := o.parsePeer(line)
			if perr != nil {
				bad(n, perr)
			} else {
				out = append(out, c)
			}
		}
		if err != nil { // io.EOF
			return out
		}
	}
}

func (o *probeOptions) parsePeer(line []byte) (wire.Candidate, error) {
	if line[0] != '{' {
		return wire.Candidate{}, fmt.Errorf("not a JSON object: %.40q", line)
	}
	var in probeInput
	if err := json.Unmarshal(line, &in); err != nil {
		return wire.Candidate{}, fmt.Errorf("bad JSON: %w", err)
	}
	c := in.Candidate
	if c.Node == wire.OriginID {
		c.RTSP = cmp.Or(c.RTSP, in.Addr)
		c.Probe = ""
		if c.Capacity == 0 {
			c.Capacity = o.originCapacity
		}
	} else if in.Addr != "" {
		if c.Probe != "" && c.Probe != in.Addr {
			return c, errors.New(`both "addr" and "probe": give one`)
		}
		c.Probe = in.Addr
	}
	if c.Probe == "" && c.RTSP == "" {
		return c, errors.New(`no address: want "addr", "probe" or "rtsp"`)
	}
	if err := wire.CheckMs("path_ms", c.PathMs); err != nil {
		return c, err
	}
	for _, a := range []string{c.Probe, c.RTSP} {
		if a != "" {
			if err := cli.CheckHostPort(a); err != nil {
				return c, err
			}
		}
	}
	return c, nil
}

// probeLine is one peer in -o json.
type probeLine struct {
	Peer  string  `json:"peer"`
	Via   string  `json:"via"`
	OK    bool    `json:"ok"`
	Node  string  `json:"node,omitempty"` // the answer's, else the candidate's
	RTTms float64 `json:"rtt_ms,omitempty"`
	*probe.Info
	Error string `json:"error,omitempty"`
}

func (o *probeOptions) printResults(w io.Writer, peers []wire.Candidate, results []probe.Result) error {
	if o.output == "json" {
		ev := event.NewWriter(w)
		for i, r := range results {
			l := probeLine{Peer: r.Addr, Via: r.Via, OK: r.Err == nil, Node: peers[i].Node}
			if r.Err != nil {
				l.Error = probe.FailureReason(r.Err, o.timeout)
			} else {
				info := r.Info
				l.Info, l.RTTms, l.Node = &info, cli.MS(r.RTT), cmp.Or(info.Node, l.Node)
			}
			ev.Write(l)
		}
		return nil
	}
	t := cli.NewTable(w)
	t.Header("PEER", "VIA", "RTT MS", "NODE", "CLIENTS", "LEVEL", "CORES", "CPU", "FREE MEM", "WILLING", "FREE CAP", "STATUS")
	for i, r := range results {
		node := cmp.Or(r.Info.Node, peers[i].Node, "-")
		if r.Err != nil {
			err := t.Append(r.Addr, r.Via, "-", node, "-", "-", "-", "-", "-", "-", "-", probe.FailureReason(r.Err, o.timeout))
			if err != nil {
				return err
			}
			continue
		}
		in := r.Info
		cpu, cores, mem := cli.Pct(in.CPU), cli.Dash(in.Cores), cli.Bytes(in.FreeMem)
		if r.Via == probe.ViaRTSP && in.CPU == 0 {
			cpu = "-" // not measured: an RTSP probe only says it is alive
		}
		if err := t.Append(r.Addr, r.Via, fmt.Sprintf("%.3f", cli.MS(r.RTT)), node,
			strconv.Itoa(in.Clients), cli.Level(in.Level), cores, cpu, mem,
			cli.YesNo(in.Willing), strconv.Itoa(in.FreeCapacity), "ok"); err != nil {
			return err
		}
	}
	return t.Render()
}

// explainLine is one candidate in --explain -o json.
type explainLine struct {
	Rank     int          `json:"rank,omitempty"` // 1 is the winner; absent when rejected
	Winner   bool         `json:"winner"`
	Node     string       `json:"node,omitempty"`
	Peer     string       `json:"peer"`
	Via      string       `json:"via"`
	RTTms    float64      `json:"rtt_ms,omitempty"`
	Metrics  *explainUsed `json:"used,omitempty"` // absent when the peer did not answer
	Terms    *probe.Terms `json:"terms,omitempty"`
	Score    *float64     `json:"score,omitempty"`
	Rejected string       `json:"rejected,omitempty"`
	// Waived: taken as a last resort despite this (every candidate was
	// rejected, this one only for the CPU ceiling).
	Waived    string `json:"waived,omitempty"`
	Preferred bool   `json:"preferred,omitempty"` // the old parent, first whenever eligible
}

// explainUsed are the metrics the score used.
type explainUsed struct {
	Clients      int     `json:"clients"`
	Capacity     int     `json:"capacity"`
	FreeCapacity int     `json:"free_capacity"`
	Level        int     `json:"level"`
	CPU          float64 `json:"cpu"`
	Willing      bool    `json:"willing"`
}

func (o *probeOptions) printExplain(w io.Writer, sel probe.Selection, wt probe.Weights) error {
	cs := sel.Choices
	if o.output == "json" {
		ev := event.NewWriter(w)
		for i, c := range cs {
			l := explainLine{Node: cmp.Or(c.Result.Info.Node, c.Candidate.Node), Peer: c.Result.Addr, Via: c.Result.Via,
				Rejected: c.Rejected, Waived: c.Waived, Preferred: c.Preferred}
			if c.Eligible() {
				l.Rank, l.Winner = i+1, i == 0
			}
			if c.Result.Err == nil {
				terms, score := c.Terms, c.Score
				l.RTTms, l.Terms, l.Score = cli.MS(c.Result.RTT), &terms, &score
				l.Metrics = &explainUsed{Clients: c.Clients, Capacity: c.Capacity, FreeCapacity: c.FreeCapacity,
					Level: c.Level, CPU: c.CPU, Willing: c.Willing}
			}
			ev.Write(l)
		}
		return nil
	}
	fmt.Fprintf(w, "stream %s\nscore = rtt_ms + %g*path_ms + %g*clients/capacity + %g*level + %g*cpu_busy, lower is better\n",
		o.stream, wt.Path, wt.Load, wt.Level, wt.CPU)
	fmt.Fprintf(w, "rejected: no answer within %v, not willing, no free capacity, CPU >= %.0f%%, level >= %d\n",
		wt.Timeout, wt.MaxCPU*100, wt.MaxLevel)
	fmt.Fprintln(w, "a relay tries the eligible ones in rank order; if none is, those over the CPU ceiling only, best first")
	if o.prefer != "" {
		fmt.Fprintf(w, "old parent %s first whenever eligible\n", o.prefer)
	}
	fmt.Fprintln(w)
	t := cli.NewTable(w)
	t.Header("RANK", "NODE", "PEER", "VIA", "RTT MS", "PATH", "LOAD", "LEVEL", "CPU", "SCORE", "VERDICT")
	for i, c := range cs {
		rank, verdict := "-", "rejected: "+c.Rejected
		if c.Eligible() {
			rank, verdict = strconv.Itoa(i+1), "eligible"
			if i == 0 {
				verdict = "WINNER"
			}
			switch {
			case c.Waived != "":
				verdict += " (last resort: " + c.Waived + ")"
			case c.Preferred:
				verdict += " (old parent)"
			}
		}
		row := []string{rank, probeChoiceNode(c), c.Result.Addr, c.Result.Via, "-", "-", "-", "-", "-", "-", verdict}
		if c.Result.Err == nil {
			row[4] = fmt.Sprintf("%.3f", c.Terms.RTT)
			row[5] = fmt.Sprintf("%.2f (%.1f ms)", c.Terms.Path, c.Candidate.PathMs)
			row[6] = fmt.Sprintf("%.2f (%d/%d)", c.Terms.Load, c.Clients, c.Capacity)
			row[7] = fmt.Sprintf("%.2f (%s)", c.Terms.Level, cli.Level(c.Level))
			row[8] = fmt.Sprintf("%.2f (%s)", c.Terms.CPU, cli.Pct(c.CPU))
			row[9] = fmt.Sprintf("%.2f", c.Score)
		}
		if err := t.Append(row); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	if c, ok := sel.Winner(); ok {
		fmt.Fprintf(w, "\nwinner: %s at %s, score %.2f\n", probeChoiceNode(c), cmp.Or(c.Candidate.RTSP, c.Result.Addr), c.Score)
		if sel.LastResort {
			fmt.Fprintln(w, "every candidate was rejected: the best of those over the CPU ceiling only is taken as a last resort")
		}
	} else {
		fmt.Fprintln(w, "\nno eligible candidate: a relay would find no parent")
	}
	return nil
}

func probeChoiceNode(c probe.Choice) string {
	return cmp.Or(c.Result.Info.Node, c.Candidate.Node, "-")
}
