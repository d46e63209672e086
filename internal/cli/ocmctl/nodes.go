package ocmctl

import (
	"cmp"
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/cli"
)

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
		RunE: o.withClient(func(cmd *cobra.Command, c *api.Client, args []string) error {
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
			t := cli.NewTable(w)
			t.Header("NODE", "WILLING", "CHILDREN", "CLIENTS", "CPU", "CORES", "STREAMS", "RTSP", "REMOTE", "UP", "SEEN", "REPORT")
			for _, n := range nodes {
				report := "-"
				if n.LastReport != nil {
					report = ago(now, *n.LastReport)
				}
				if err := t.Append(n.ID, cli.YesNo(n.Willing), fmt.Sprintf("%d/%d", n.Children, n.Capacity),
					strconv.Itoa(n.Clients), cli.Pct(n.CPU), cli.Dash(n.Cores), strconv.Itoa(len(n.Streams)),
					cmp.Or(n.RTSP, "-"), cmp.Or(n.Remote, "-"), ago(now, n.Connected), ago(now, n.LastSeen), report); err != nil {
					return err
				}
			}
			return t.Render()
		}),
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
