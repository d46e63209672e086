package ocmctl

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/wire"
)

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
		RunE: o.withClient(func(cmd *cobra.Command, c *api.Client, args []string) error {
			stream := ""
			if ro.stream != "" {
				var err error
				if stream, err = ctlStream(ro.stream); err != nil {
					return err
				}
			}
			sent, raw, err := c.Reconnect(cmd.Context(), args[0], api.ReconnectOptions{Stream: stream, Subtree: ro.subtree, To: ro.to})
			if err != nil {
				return err
			}
			return o.printSent(cmd.OutOrStdout(), "reconnect "+args[0], sent, raw,
				fmt.Sprintf("nothing sent: %s relays no stream", args[0]))
		}),
	}
	f := cmd.Flags()
	f.BoolVar(&ro.subtree, "subtree", false, "tell every relay below NODE too")
	f.StringVar(&ro.stream, "stream", "", "only this stream (origin URL; default: every stream NODE relays)")
	f.StringVar(&ro.to, "to", "", fmt.Sprintf("the parent to switch to: a node id or %q (default: the relay resolves one)", wire.OriginID))
	return cmd
}
