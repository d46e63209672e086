package ocmctl

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/cli"
)

// writeDot draws trees as one Graphviz digraph, a cluster per stream,
// the origin at the top and an edge from each parent to each child. A
// node is labelled with its id, level, children over capacity, readers,
// loss and bitrate; orphans are red, nodes handing over (leaving) orange,
// pending joins dashed, lossy nodes (1% or more) bold. Render it with
// `dot -Tsvg`.
func writeDot(w io.Writer, trees []api.Tree) error {
	var b strings.Builder
	b.WriteString("digraph ocm {\n\trankdir=TB;\n\tnode [shape=box, fontname=\"monospace\", fontsize=10];\n")
	for i, t := range trees {
		id := func(node string) string { return strconv.Quote(fmt.Sprintf("s%d/%s", i, node)) }
		fmt.Fprintf(&b, "\tsubgraph %s {\n\t\tlabel=%s;\n", strconv.Quote(fmt.Sprintf("cluster_%d", i)),
			strconv.Quote(fmt.Sprintf("%s (depth %d)", t.Stream, t.Depth)))
		fmt.Fprintf(&b, "\t\t%s [label=%s, shape=doubleoctagon];\n", id("origin"),
			strconv.Quote(fmt.Sprintf("origin\n%d/%d", len(t.Origin.Children), t.Origin.Capacity)))
		for _, m := range t.Nodes {
			label := fmt.Sprintf("%s\nL%d %d/%d\n%d readers %.1f%% %s", m.Node, m.Level, m.Clients, m.Capacity,
				m.Readers, m.Loss*100, cli.Bitrate(m.Bitrate))
			var attrs []string
			switch {
			case !m.Attached && m.Parent == "":
				attrs = append(attrs, `color="red"`, `fontcolor="red"`)
				label += "\norphan"
			case m.Leaving:
				attrs = append(attrs, `color="orange"`)
				label += "\nleaving"
			case !m.Attached:
				attrs = append(attrs, `color="gray"`)
			}
			if m.PendingParent != "" {
				attrs = append(attrs, `style="dashed"`)
				label += "\npending " + m.PendingParent
			}
			if m.Loss >= 0.01 {
				attrs = append(attrs, `penwidth=2`)
			}
			fmt.Fprintf(&b, "\t\t%s [%s];\n", id(m.Node), strings.Join(append([]string{"label=" + strconv.Quote(label)}, attrs...), ", "))
		}
		for _, c := range t.Origin.Children {
			fmt.Fprintf(&b, "\t\t%s -> %s;\n", id("origin"), id(c))
		}
		for _, m := range t.Nodes {
			for _, c := range m.Children {
				fmt.Fprintf(&b, "\t\t%s -> %s;\n", id(m.Node), id(c))
			}
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	_, err := io.WriteString(w, b.String())
	return err
}
