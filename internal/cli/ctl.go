package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/ctlapi"
	"github.com/ocm-overlay/ocm/internal/streamurl"
	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// ctlServerEnv names ocm-ctl's --server when the flag is not given.
const ctlServerEnv = "OCM_SERVER"

// ctlDefaultMediator is url's --mediator: the local mediator's default
// RTSP address.
const ctlDefaultMediator = "localhost:8554"

// ctlOptions are ocm-ctl's global flags and its hooks for tests.
type ctlOptions struct {
	server  string
	output  string
	timeout time.Duration

	now        func() time.Time
	isTerminal func(io.Writer) bool
}

// NewCtlCommand returns the ocm-ctl command.
func NewCtlCommand() *cobra.Command {
	return newCtlCommand(&ctlOptions{now: time.Now, isTerminal: isTerminal})
}

func newCtlCommand(o *ctlOptions) *cobra.Command {
	root := &cobra.Command{
		Use:   "ocm-ctl",
		Short: "Look at and steer the overlay through ocm-server's HTTP API",
		Long: `ocm-ctl is the operator's command for ocm-server: it shows the relay trees,
nodes and streams the server keeps, moves relays (reconnect), removes them
(kick) or retires them without a gap (drain), and reads or changes the
recovery policy. It talks to the server's HTTP API (--server, default
$` + ctlServerEnv + ` or ` + ctlapi.DefaultServer + `).

Output is a table or tree for people; -o json prints the API's own JSON,
one object per line (one per node, stream or tree), for scripts and jq.

A stream is named by its origin URL, rtsp://MSHOST[:MSPORT]/MEDIA (the port
defaults to 554); an enhanced URL rtsp://HOST:PORT/MEDIA?MSHOST[:MSPORT]
names the same stream.

Exit status: 0 on success; 1 when the server cannot be reached, answers an
error (an unknown node or stream is the server's 404 message), or the
arguments are wrong.`,
		Example: `  # Every stream's tree, then one
  ocm-ctl tree
  ocm-ctl tree rtsp://10.0.0.1/live

  # Nodes and streams as tables; nodes as JSON lines for jq
  ocm-ctl nodes
  ocm-ctl streams
  ocm-ctl nodes -o json | jq -r 'select(.cpu > 0.8) | .id'

  # Another server, by flag or environment
  ocm-ctl --server 10.0.0.1:7080 tree
  OCM_SERVER=10.0.0.1:7080 ocm-ctl nodes

  # Move relay r7 and everything below it; retire r3 before maintenance
  ocm-ctl reconnect r7 --subtree
  ocm-ctl drain r3

  # Switch to the gradual recovery policy
  ocm-ctl policy gradual

  # Redraw the trees every second until Ctrl-C
  ocm-ctl watch --interval 1s

  # The URL a player opens on the local mediator for rtsp://10.0.0.1/live
  ocm-ctl url live 10.0.0.1`,
		SilenceUsage:  true,
		SilenceErrors: true, // Main prints them
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("server") {
				o.server = cmp.Or(os.Getenv(ctlServerEnv), ctlapi.DefaultServer)
			}
			if o.output != "table" && o.output != "json" {
				return fmt.Errorf("-o %q: want table or json", o.output)
			}
			if o.timeout <= 0 {
				return errors.New("--timeout must be positive")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return fmt.Errorf("unknown command %q (see ocm-ctl --help)", args[0])
			}
			return cmd.Help()
		},
	}
	pf := root.PersistentFlags()
	pf.StringVar(&o.server, "server", "", "ocm-server's HTTP API, HOST:PORT or an http:// URL (default $"+ctlServerEnv+", else "+ctlapi.DefaultServer+")")
	pf.StringVarP(&o.output, "output", "o", "table", "output format: table or json (the API's JSON, one object per line)")
	pf.DurationVar(&o.timeout, "timeout", ctlapi.DefaultTimeout, "time the server has to answer each request")
	root.AddCommand(o.treeCommand(), o.nodesCommand(), o.streamsCommand(),
		o.reconnectCommand(), o.kickCommand(), o.drainCommand(),
		o.policyCommand(), o.watchCommand(), o.urlCommand())
	return root
}

// client returns the API client for --server.
func (o *ctlOptions) client() (*ctlapi.Client, error) {
	c, err := ctlapi.New(o.server)
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	c.HTTP.Timeout = o.timeout
	return c, nil
}

// ctlArgs checks the number of arguments and says the usage when wrong.
func ctlArgs(lo, hi int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) >= lo && (hi < 0 || len(args) <= hi) {
			return nil
		}
		what := "too many arguments"
		if len(args) < lo {
			what = "missing arguments"
		}
		return fmt.Errorf("%s: usage: %s (see %s --help)", what, cmd.UseLine(), cmd.CommandPath())
	}
}

// ctlStream returns the stream key for a stream the user wrote: origin
// and enhanced URLs are normalised as the overlay keys its trees
// (rtsp://MSHOST:MSPORT/MEDIA); anything else is passed on as is.
func ctlStream(s string) (string, error) {
	if !strings.HasPrefix(strings.ToLower(s), "rtsp://") {
		return s, nil
	}
	org, err := streamurl.Parse(s)
	if err != nil {
		return "", fmt.Errorf("stream %q: %w", s, err)
	}
	return org.URL(), nil
}

// printJSON prints an API answer on one line, or one line per element
// when it is a list.
func printJSON(w io.Writer, raw json.RawMessage, list bool) error {
	var items []json.RawMessage
	if list {
		if err := json.Unmarshal(raw, &items); err != nil {
			return err
		}
	} else {
		items = []json.RawMessage{raw}
	}
	var buf bytes.Buffer
	for _, it := range items {
		if err := json.Compact(&buf, it); err != nil {
			return err
		}
		buf.WriteByte('\n')
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// --- tree ---

func (o *ctlOptions) treeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "tree [STREAM]",
		Short: "Draw each stream's relay tree (or one stream's)",
		Long: `tree draws each stream's distribution tree, origin at the root and each
relay below its parent, with its level, its children over its capacity
(children over all the streams it relays, as the server counts its load;
"(N here)" when only N of them are in this stream), and from its last
report the readers it serves, the frame loss and the bitrate it receives.

Relays that are not attached under the origin (an orphan waiting for a
parent, and what still hangs below it) follow under "detached"; their
levels are relative to the orphan. STATE says what is in flight: pending
(a join not yet confirmed), leaving (handing its children over), handover
(the parent a handover promised it).

STREAM is the origin URL, rtsp://MSHOST[:MSPORT]/MEDIA; without it, every
stream. An unknown stream is an error (404).`,
		Example: `  ocm-ctl tree
  ocm-ctl tree rtsp://10.0.0.1:554/live
  ocm-ctl tree rtsp://10.0.0.1/live -o json | jq '.nodes[] | select(.loss > 0.01) | .node'`,
		Args: ctlArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			trees, raw, list, err := o.fetchTrees(cmd.Context(), c, args)
			if err != nil {
				return err
			}
			return o.printTrees(cmd.OutOrStdout(), trees, raw, list)
		},
	}
}

// fetchTrees gets one stream's tree (args[0]) or all; list says whether
// raw is a list.
func (o *ctlOptions) fetchTrees(ctx context.Context, c *ctlapi.Client, args []string) (trees []tree.TreeSnapshot, raw json.RawMessage, list bool, err error) {
	if len(args) == 0 {
		trees, raw, err = c.Trees(ctx)
		return trees, raw, true, err
	}
	s, err := ctlStream(args[0])
	if err != nil {
		return nil, nil, false, err
	}
	t, raw, err := c.Tree(ctx, s)
	if err != nil {
		return nil, nil, false, err
	}
	return []tree.TreeSnapshot{t}, raw, false, nil
}

func (o *ctlOptions) printTrees(w io.Writer, trees []tree.TreeSnapshot, raw json.RawMessage, list bool) error {
	if o.output == "json" {
		return printJSON(w, raw, list)
	}
	if len(trees) == 0 {
		_, err := fmt.Fprintln(w, "no streams: no relay has joined one yet")
		return err
	}
	var buf bytes.Buffer
	for i, t := range trees {
		if i > 0 {
			buf.WriteByte('\n')
		}
		renderTree(&buf, t)
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// renderTree draws one stream's tree as an indented ASCII tree with
// aligned columns.
func renderTree(w io.Writer, t tree.TreeSnapshot) {
	members := make(map[string]tree.MemberSnapshot, len(t.Nodes))
	attached, orphans := 0, 0
	for _, m := range t.Nodes {
		members[m.Node] = m
		switch {
		case m.Attached:
			attached++
		case m.Parent == "":
			orphans++
		}
	}
	detached := len(t.Nodes) - attached
	sum := fmt.Sprintf("%s  (%s", t.Stream, plural(len(t.Nodes), "relay"))
	if detached > 0 {
		sum += fmt.Sprintf(": %d attached, %d detached, %s", attached, detached, plural(orphans, "orphan"))
	}
	fmt.Fprintf(w, "%s; depth %d)\n", sum, t.Depth)

	rows := [][]string{{"NODE", "LEVEL", "CHILDREN", "READERS", "LOSS", "BITRATE", "STATE"}}
	rows = append(rows, []string{"origin", "0", fmt.Sprintf("%d/%d", len(t.Origin.Children), t.Origin.Capacity), "-", "-", "-", ""})
	seen := make(map[string]bool, len(t.Nodes))
	var walk func(id, prefix string, last bool)
	walk = func(id, prefix string, last bool) {
		branch, indent := "|-- ", "|   "
		if last {
			branch, indent = "`-- ", "    "
		}
		m, ok := members[id]
		switch {
		case !ok:
			rows = append(rows, []string{prefix + branch + id, "-", "-", "-", "-", "-", "not a member"})
			return
		case seen[id]:
			rows = append(rows, []string{prefix + branch + id, "-", "-", "-", "-", "-", "cycle"})
			return
		}
		seen[id] = true
		rows = append(rows, memberRow(prefix+branch, m))
		for i, ch := range m.Children {
			walk(ch, prefix+indent, i == len(m.Children)-1)
		}
	}
	for i, id := range t.Origin.Children {
		walk(id, "", i == len(t.Origin.Children)-1)
	}
	// Detached: orphans (and members whose parent is unknown) with what
	// hangs below them.
	var roots []string
	for _, m := range t.Nodes {
		if _, ok := members[m.Parent]; !seen[m.Node] && !m.Attached && (m.Parent == "" || !ok) {
			roots = append(roots, m.Node)
		}
	}
	if len(roots) > 0 {
		rows = append(rows, []string{"(detached)", "", "", "", "", "", ""})
		for i, id := range roots {
			walk(id, "", i == len(roots)-1)
		}
	}
	// Anything still unseen is in a cycle or marked attached without a
	// path from the origin, which the server's invariants exclude.
	var rest []string
	for _, m := range t.Nodes {
		if !seen[m.Node] {
			rest = append(rest, m.Node)
		}
	}
	if len(rest) > 0 {
		rows = append(rows, []string{"(unreachable)", "", "", "", "", "", ""})
		for i, id := range rest {
			if !seen[id] {
				walk(id, "", i == len(rest)-1)
			}
		}
	}
	writeColumns(w, rows)
}

func memberRow(prefix string, m tree.MemberSnapshot) []string {
	children := fmt.Sprintf("%d/%d", m.Clients, m.Capacity)
	if len(m.Children) != m.Clients {
		children += fmt.Sprintf(" (%d here)", len(m.Children))
	}
	var state []string
	if !m.Attached && m.Parent == "" {
		state = append(state, "orphan")
	}
	if m.PendingParent != "" {
		state = append(state, "pending "+m.PendingParent)
	}
	if m.Leaving {
		state = append(state, "leaving")
	}
	if m.Reserved != "" {
		state = append(state, "handover to "+m.Reserved)
	}
	return []string{prefix + m.Node, strconv.Itoa(m.Level), children, strconv.Itoa(m.Readers),
		fmt.Sprintf("%.1f%%", m.Loss*100), bitrate(m.Bitrate), strings.Join(state, ", ")}
}

// writeColumns writes rows with each column padded to its widest cell,
// three spaces apart, trailing blanks trimmed.
func writeColumns(w io.Writer, rows [][]string) {
	var widths []int
	for _, r := range rows {
		for i, c := range r {
			if i >= len(widths) {
				widths = append(widths, 0)
			}
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	var b strings.Builder
	for _, r := range rows {
		b.Reset()
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c)+3))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

func plural(n int, what string) string {
	if n == 1 {
		return "1 " + what
	}
	return fmt.Sprintf("%d %ss", n, what)
}

// bitrate prints bits per second in decimal units.
func bitrate(bps float64) string {
	switch {
	case bps >= 1e9:
		return fmt.Sprintf("%.2f Gb/s", bps/1e9)
	case bps >= 1e6:
		return fmt.Sprintf("%.2f Mb/s", bps/1e6)
	case bps >= 1e3:
		return fmt.Sprintf("%.1f kb/s", bps/1e3)
	}
	return fmt.Sprintf("%.0f b/s", bps)
}

// --- nodes and streams ---

func (o *ctlOptions) nodesCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "List the relays connected to the server",
		Long: `nodes lists every relay the server knows: whether it relays to others
(WILLING), its children over its capacity (over all streams), the readers
it reported (CLIENTS), CPU busy and cores, how many streams it relays, its
RTSP address, the address its connection comes from, and how long ago it
connected (UP), was last heard from (SEEN) and last reported (REPORT).`,
		Example: `  ocm-ctl nodes
  ocm-ctl nodes -o json | jq -r '.id + " " + (.streams | join(","))'`,
		Args: ctlArgs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			nodes, raw, err := c.Nodes(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output == "json" {
				return printJSON(w, raw, true)
			}
			if len(nodes) == 0 {
				_, err := fmt.Fprintln(w, "no nodes: no relay is connected")
				return err
			}
			now := o.now()
			t := newProbeTable(w)
			t.Header("NODE", "WILLING", "CHILDREN", "CLIENTS", "CPU", "CORES", "STREAMS", "RTSP", "REMOTE", "UP", "SEEN", "REPORT")
			for _, n := range nodes {
				report := "-"
				if n.LastReport != nil {
					report = ago(now, *n.LastReport)
				}
				if err := t.Append(n.ID, probeYesNo(n.Willing), fmt.Sprintf("%d/%d", n.Children, n.Capacity),
					strconv.Itoa(n.Clients), probePct(n.CPU), probeDash(n.Cores), strconv.Itoa(len(n.Streams)),
					cmp.Or(n.RTSP, "-"), cmp.Or(n.Remote, "-"), ago(now, n.Connected), ago(now, n.LastSeen), report); err != nil {
					return err
				}
			}
			return t.Render()
		},
	}
}

func (o *ctlOptions) streamsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "streams",
		Short: "List the streams the overlay carries",
		Long: `streams lists every stream the server keeps a tree for: its origin, the
relays in its tree (NODES), how many are attached under the origin, how
many are orphans and how many of those have a join pending, the depth of
the tree and the relays pulling straight from the origin.`,
		Example: `  ocm-ctl streams
  ocm-ctl streams -o json | jq -r 'select(.orphans > 0) | .stream'`,
		Args: ctlArgs(0, 0),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			streams, raw, err := c.Streams(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output == "json" {
				return printJSON(w, raw, true)
			}
			if len(streams) == 0 {
				_, err := fmt.Fprintln(w, "no streams: no relay has joined one yet")
				return err
			}
			t := newProbeTable(w)
			t.Header("STREAM", "ORIGIN", "NODES", "ATTACHED", "ORPHANS", "PENDING", "DEPTH", "FROM ORIGIN")
			for _, s := range streams {
				if err := t.Append(s.Stream, cmp.Or(s.Origin, "-"), strconv.Itoa(s.Nodes), strconv.Itoa(s.Attached),
					strconv.Itoa(s.Orphans), strconv.Itoa(s.Pending), strconv.Itoa(s.Depth),
					strconv.Itoa(s.OriginChildren)); err != nil {
					return err
				}
			}
			return t.Render()
		},
	}
}

// ago prints how long before now t was, "-" for the zero time.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	}
	return fmt.Sprintf("%dd%02dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
}

// --- actions ---

type ctlReconnectOptions struct {
	subtree bool
	stream  string
	to      string
}

func (o *ctlOptions) reconnectCommand() *cobra.Command {
	ro := &ctlReconnectOptions{}
	cmd := &cobra.Command{
		Use:   "reconnect NODE [--subtree] [--stream STREAM] [--to PARENT]",
		Short: "Tell a relay (or its whole subtree) to find a new parent",
		Long: `reconnect sends a reconnect (reason operator) to NODE for every stream it
relays, or only --stream: the relay resolves a new parent and switches to it
make-before-break, so its players see no gap. With --subtree every relay
below it is told too. --to names the parent to switch to (a node id, or
"origin"); the server refuses one that does not receive the stream, is
leaving, or is NODE or below it.

The messages sent are listed. An unknown node is an error (404).`,
		Example: `  ocm-ctl reconnect r7
  ocm-ctl reconnect r7 --subtree
  ocm-ctl reconnect r7 --stream rtsp://10.0.0.1/live --to origin`,
		Args: ctlArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			stream := ""
			if ro.stream != "" {
				if stream, err = ctlStream(ro.stream); err != nil {
					return err
				}
			}
			sent, raw, err := c.Reconnect(cmd.Context(), args[0], ctlapi.ReconnectOptions{Stream: stream, Subtree: ro.subtree, To: ro.to})
			if err != nil {
				return err
			}
			return o.printSent(cmd.OutOrStdout(), "reconnect "+args[0], sent, raw,
				fmt.Sprintf("nothing sent: %s relays no stream", args[0]))
		},
	}
	f := cmd.Flags()
	f.BoolVar(&ro.subtree, "subtree", false, "tell every relay below NODE too")
	f.StringVar(&ro.stream, "stream", "", "only this stream (origin URL; default: every stream NODE relays)")
	f.StringVar(&ro.to, "to", "", fmt.Sprintf("the parent to switch to: a node id or %q (default: the relay resolves one)", wire.OriginID))
	return cmd
}

func (o *ctlOptions) kickCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "kick NODE",
		Short: "Close a relay's connection, as if it had failed",
		Long: `kick closes NODE's connection to the server with an error (kicked): it is
removed from every tree and its subtree recovers under the recovery policy
(see ocm-ctl policy), exactly as after a failure. To retire a relay
without its children noticing, use drain. An unknown node is an error (404).`,
		Example: `  ocm-ctl kick r7`,
		Args:    ctlArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			sent, raw, err := c.Kick(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output == "json" {
				return printJSON(w, raw, false)
			}
			node := args[0]
			if len(sent.Sent) > 0 {
				node = sent.Sent[0].Node
			}
			_, err = fmt.Fprintf(w, "kicked %s: its connection is closed and its subtree recovers as after a failure (see ocm-ctl policy)\n", node)
			return err
		},
	}
}

func (o *ctlOptions) drainCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "drain NODE",
		Short: "Retire a relay: hand its children over, then tell it to leave",
		Long: `drain hands NODE's children over to new parents (each told to switch
make-before-break, as when a relay leaves on SIGTERM) and tells NODE to
leave the overlay once they have switched. The messages sent are listed:
the drain itself and one reconnect per child. An unknown node is an error
(404).`,
		Example: `  ocm-ctl drain r3`,
		Args:    ctlArgs(1, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			sent, raw, err := c.Drain(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return o.printSent(cmd.OutOrStdout(), "drain "+args[0], sent, raw, "nothing sent")
		},
	}
}

// printSent prints an action's answer.
func (o *ctlOptions) printSent(w io.Writer, what string, sent ctlapi.Sent, raw json.RawMessage, none string) error {
	if o.output == "json" {
		return printJSON(w, raw, false)
	}
	if len(sent.Sent) == 0 {
		_, err := fmt.Fprintf(w, "%s: %s\n", what, none)
		return err
	}
	fmt.Fprintf(w, "%s: %s sent\n", what, plural(len(sent.Sent), "message"))
	t := newProbeTable(w)
	t.Header("NODE", "MESSAGE", "STREAM", "SWITCH TO")
	for _, s := range sent.Sent {
		if err := t.Append(s.Node, cmp.Or(s.Type, "-"), cmp.Or(s.Stream, "-"), cmp.Or(s.Target, "-")); err != nil {
			return err
		}
	}
	return t.Render()
}

// --- policy ---

func (o *ctlOptions) policyCommand() *cobra.Command {
	names := make([]string, len(tree.Policies))
	for i, p := range tree.Policies {
		names[i] = string(p)
	}
	return &cobra.Command{
		Use:   "policy [NAME]",
		Short: "Show the recovery policy and timings, or change the policy",
		Long: `policy shows the recovery policy in force and the server's timings. With
NAME it changes the policy to NAME, one of: ` + strings.Join(names, ", ") + `
(see ocm-server --help for what each does). Relays connected from then on
are told the new policy in their welcome.`,
		Example: `  ocm-ctl policy
  ocm-ctl policy gradual
  ocm-ctl policy -o json | jq -r .recovery`,
		Args: ctlArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client()
			if err != nil {
				return err
			}
			ctx, w := cmd.Context(), cmd.OutOrStdout()
			if len(args) == 0 {
				p, raw, err := c.Policy(ctx)
				if err != nil {
					return err
				}
				if o.output == "json" {
					return printJSON(w, raw, false)
				}
				printPolicy(w, p)
				return nil
			}
			old, _, err := c.Policy(ctx)
			if err != nil {
				return err
			}
			p, raw, err := c.SetPolicy(ctx, args[0])
			if err != nil {
				return err
			}
			if o.output == "json" {
				return printJSON(w, raw, false)
			}
			if old.Recovery == p.Recovery {
				fmt.Fprintf(w, "recovery policy unchanged: already %s\n\n", p.Recovery)
			} else {
				fmt.Fprintf(w, "recovery policy changed from %s to %s\n\n", old.Recovery, p.Recovery)
			}
			printPolicy(w, p)
			return nil
		},
	}
}

func printPolicy(w io.Writer, p ctlapi.Policy) {
	ms := func(n int64) string { return (time.Duration(n) * time.Millisecond).String() }
	writeColumns(w, [][]string{
		{"recovery", p.Recovery},
		{"heartbeat", ms(p.HeartbeatMs)},
		{"report interval", ms(p.ReportMs)},
		{"max candidates", strconv.Itoa(p.MaxCandidates)},
		{"origin capacity", strconv.Itoa(p.OriginCapacity)},
		{"reconnect step", ms(p.ReconnectStepMs)},
		{"handover timeout", ms(p.HandoverMs)},
		{"orphan grace", ms(p.OrphanGraceMs)},
	})
}

// --- watch ---

type ctlWatchOptions struct {
	interval time.Duration
	count    int
}

func (o *ctlOptions) watchCommand() *cobra.Command {
	wo := &ctlWatchOptions{}
	cmd := &cobra.Command{
		Use:   "watch [STREAM]",
		Short: "Redraw the trees every --interval until interrupted",
		Long: `watch prints what ocm-ctl tree prints, again every --interval, until
Ctrl-C (or --count times). On a terminal the screen is cleared before each
redraw; otherwise each drawing follows the last under a time stamp line.
When the server cannot be reached or the stream is unknown, the error is
shown and watch keeps trying. With -o json each round prints the trees as
JSON lines.`,
		Example: `  ocm-ctl watch
  ocm-ctl watch rtsp://10.0.0.1/live --interval 500ms
  ocm-ctl watch -o json --count 10 > trees.jsonl`,
		Args: ctlArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if wo.interval <= 0 {
				return errors.New("--interval must be positive")
			}
			if wo.count < 0 {
				return errors.New("--count must not be negative")
			}
			if len(args) == 1 {
				if _, err := ctlStream(args[0]); err != nil {
					return err
				}
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			return o.watch(cmd, c, args, wo)
		},
	}
	cmd.Flags().DurationVar(&wo.interval, "interval", 2*time.Second, "time between redraws")
	cmd.Flags().IntVar(&wo.count, "count", 0, "stop after this many redraws (0: until interrupted)")
	return cmd
}

func (o *ctlOptions) watch(cmd *cobra.Command, c *ctlapi.Client, args []string, wo *ctlWatchOptions) error {
	ctx, w, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	term := o.output == "table" && o.isTerminal(w)
	tick := time.NewTicker(wo.interval)
	defer tick.Stop()
	for n := 1; ; n++ {
		trees, raw, list, err := o.fetchTrees(ctx, c, args)
		if ctx.Err() != nil {
			return nil // interrupted: the normal end
		}
		var frame bytes.Buffer
		if o.output == "table" {
			if term {
				frame.WriteString("\x1b[H\x1b[2J")
			} else if n > 1 {
				frame.WriteByte('\n')
			}
			fmt.Fprintf(&frame, "every %v from %s at %s\n\n", wo.interval, c.Server(), o.now().Format("2006-01-02 15:04:05"))
		}
		if err == nil {
			err = o.printTrees(&frame, trees, raw, list)
		}
		if err != nil && term {
			fmt.Fprintf(&frame, "error: %v\n", err)
		}
		if _, werr := w.Write(frame.Bytes()); werr != nil {
			return werr
		}
		if err != nil && !term {
			fmt.Fprintf(stderr, "%s: %v\n", cmd.Root().Name(), err)
		}
		if wo.count > 0 && n >= wo.count {
			return err // the last round's
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// --- url ---

type ctlURLOptions struct {
	mediator string
}

// ctlURL is url's -o json line.
type ctlURL struct {
	URL    string `json:"url"`    // what a player opens on the mediator
	Stream string `json:"stream"` // the stream's key: the normalised origin URL
	Origin string `json:"origin"` // the origin's HOST:PORT
	Media  string `json:"media"`
}

func (o *ctlOptions) urlCommand() *cobra.Command {
	uo := &ctlURLOptions{}
	cmd := &cobra.Command{
		Use:   "url MEDIA MSHOST[:PORT] | url rtsp://MSHOST[:PORT]/MEDIA",
		Short: "Print the enhanced URL a player opens on a mediator to get a stream",
		Long: `url prints the enhanced URL that makes a local mediator (rtsp-mediator or
ocm-relay at --mediator) fetch MEDIA from the origin MSHOST[:PORT] through
the overlay: rtsp://MEDIATOR/MEDIA?MSHOST:PORT. The origin is normalised as
the overlay keys streams: the host in lower case, port 554 when absent,
IPv6 addresses in brackets. The origin URL rtsp://MSHOST[:PORT]/MEDIA may be
given instead of MEDIA and MSHOST. The server is not contacted.`,
		Example: `  ocm-ctl url live 10.0.0.1
  # rtsp://localhost:8554/live?10.0.0.1:554

  ocm-ctl url cams/door Origin.example:8554 --mediator 192.168.1.20:8555
  # rtsp://192.168.1.20:8555/cams/door?origin.example:8554

  ffplay "$(ocm-ctl url rtsp://10.0.0.1/live)"`,
		Args: ctlArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkHostPort(uo.mediator); err != nil {
				return fmt.Errorf("--mediator: %w", err)
			}
			var org streamurl.Origin
			var err error
			if len(args) == 1 {
				if !strings.HasPrefix(strings.ToLower(args[0]), "rtsp://") {
					return fmt.Errorf("%q: give MEDIA MSHOST[:PORT], or the origin URL rtsp://MSHOST[:PORT]/MEDIA", args[0])
				}
				org, err = streamurl.Parse(args[0])
			} else {
				org, err = streamurl.ParseEnhanced(args[0], url.QueryEscape(args[1]))
			}
			if err != nil {
				return err
			}
			l := ctlURL{URL: org.EnhancedURL(uo.mediator), Stream: org.URL(), Origin: org.Addr(), Media: org.Media}
			w := cmd.OutOrStdout()
			if o.output == "json" {
				b, err := json.Marshal(l)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(w, "%s\n", b)
				return err
			}
			_, err = fmt.Fprintln(w, l.URL)
			return err
		},
	}
	cmd.Flags().StringVar(&uo.mediator, "mediator", ctlDefaultMediator, "the mediator's RTSP address, HOST:PORT, as the player reaches it")
	return cmd
}
