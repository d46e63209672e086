package ocmctl

import (
	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/spf13/cobra"
)

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
		RunE: o.withClient(func(cmd *cobra.Command, c *api.Client, args []string) error {
			sent, raw, err := c.Drain(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			return o.printSent(cmd.OutOrStdout(), "drain "+args[0], sent, raw, "nothing sent")
		}),
	}
}
