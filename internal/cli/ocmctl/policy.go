package ocmctl

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/tree"
)

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
		RunE: o.withClient(func(cmd *cobra.Command, c *api.Client, args []string) error {
			ctx, w := cmd.Context(), cmd.OutOrStdout()
			if len(args) == 0 {
				p, raw, err := c.Policy(ctx)
				if err != nil {
					return err
				}
				if o.output == "json" {
					return printJSON(w, raw, false)
				}
				return printPolicy(w, p)
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
			return printPolicy(w, p)
		}),
	}
}

func printPolicy(w io.Writer, p api.Policy) error {
	ms := func(n int64) string { return (time.Duration(n) * time.Millisecond).String() }
	return cli.WriteTable(w, nil, [][]string{
		{"recovery", p.Recovery},
		{"heartbeat", ms(p.HeartbeatMs)},
		{"report interval", ms(p.ReportMs)},
		{"max candidates", strconv.Itoa(p.MaxCandidates)},
		{"origin capacity", strconv.Itoa(p.OriginCapacity)},
		{"displace", displaceText(p.Displace)},
		{"reconnect step", ms(p.ReconnectStepMs)},
		{"handover timeout", ms(p.HandoverMs)},
		{"orphan grace", ms(p.OrphanGraceMs)},
	})
}

// displaceText says what ocm-server --displace is set to.
func displaceText(n int) string {
	switch {
	case n < 0:
		return "off"
	case n == 0:
		return "the origin only"
	}
	return fmt.Sprintf("origin and %d full relays", n)
}
