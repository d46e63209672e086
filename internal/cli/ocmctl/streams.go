package ocmctl

import (
	"cmp"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/cli"
)

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
		RunE: o.withClient(func(cmd *cobra.Command, c *api.Client, args []string) error {
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
			t := cli.NewTable(w)
			t.Header("STREAM", "ORIGIN", "NODES", "ATTACHED", "ORPHANS", "PENDING", "DEPTH", "FROM ORIGIN")
			for _, s := range streams {
				if err := t.Append(s.Stream, cmp.Or(s.Origin, "-"), strconv.Itoa(s.Nodes), strconv.Itoa(s.Attached),
					strconv.Itoa(s.Orphans), strconv.Itoa(s.Pending), strconv.Itoa(s.Depth),
					strconv.Itoa(s.OriginChildren)); err != nil {
					return err
				}
			}
			return t.Render()
		}),
	}
}
