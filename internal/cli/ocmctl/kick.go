package ocmctl

import (
	"fmt"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/spf13/cobra"
)

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
		RunE: o.withClient(func(cmd *cobra.Command, c *api.Client, args []string) error {
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
		}),
	}
}
