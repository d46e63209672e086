package ocmctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/cli"
)

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
stream. An unknown stream is an error (404).

-o dot prints the trees as one Graphviz digraph (a cluster per stream;
orphans red, leaving orange, pending dashed, lossy bold) for dot -Tsvg.`,
		Example: `  ocm-ctl tree
  ocm-ctl tree rtsp://10.0.0.1:554/live
  ocm-ctl tree rtsp://10.0.0.1/live -o json | jq '.nodes[] | select(.loss > 0.01) | .node'
  ocm-ctl tree -o dot | dot -Tsvg > tree.svg`,
		Args: ctlArgs(0, 1),
		RunE: o.withClient(func(cmd *cobra.Command, c *api.Client, args []string) error {
			trees, raw, list, err := o.fetchTrees(cmd.Context(), c, args)
			if err != nil {
				return err
			}
			return o.printTrees(cmd.OutOrStdout(), trees, raw, list)
		}),
	}
}

// fetchTrees gets one stream's tree (args[0]) or all; list says whether
// raw is a list.
func (o *ctlOptions) fetchTrees(ctx context.Context, c *api.Client, args []string) (trees []api.Tree, raw json.RawMessage, list bool, err error) {
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
	return []api.Tree{t}, raw, false, nil
}

func (o *ctlOptions) printTrees(w io.Writer, trees []api.Tree, raw json.RawMessage, list bool) error {
	switch o.output {
	case "json":
		return printJSON(w, raw, list)
	case "dot":
		return writeDot(w, trees)
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
		if err := renderTree(&buf, t); err != nil {
			return err
		}
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// renderTree draws one stream's tree as an indented ASCII tree with
// aligned columns.
func renderTree(w io.Writer, t api.Tree) error {
	members := make(map[string]api.Member, len(t.Nodes))
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
	sum := fmt.Sprintf("%s  (%s", t.Stream, cli.Plural(len(t.Nodes), "relay"))
	if detached > 0 {
		sum += fmt.Sprintf(": %d attached, %d detached, %s", attached, detached, cli.Plural(orphans, "orphan"))
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
	return cli.WriteTable(w, rows[0], rows[1:])
}

func memberRow(prefix string, m api.Member) []string {
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
		fmt.Sprintf("%.1f%%", m.Loss*100), cli.Bitrate(m.Bitrate), strings.Join(state, ", ")}
}
