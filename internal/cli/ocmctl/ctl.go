package ocmctl

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/streamurl"
)

// ctlServerEnv names ocm-ctl's --server when the flag is not given.
const ctlServerEnv = "OCM_SERVER"

// ctlTokenEnv names the environment variable with the server's token.
const ctlTokenEnv = "OCM_TOKEN"

// ctlDefaultMediator is url's --mediator: the local mediator's default
// RTSP address.
const ctlDefaultMediator = "localhost:8554"

// ctlOptions are ocm-ctl's global flags and its hooks for tests.
type ctlOptions struct {
	server  string
	output  string
	timeout time.Duration
	token   string

	now        func() time.Time
	isTerminal func(io.Writer) bool
}

// NewCommand returns the ocm-ctl command.
func NewCommand() *cobra.Command {
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
$` + ctlServerEnv + ` or ` + api.DefaultServer + `).

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
  ocm-ctl url live 10.0.0.1

  # Complete node ids, stream URLs, policies and -o values (bash; also
  # zsh, fish, powershell): they come from the server when it answers
  source <(ocm-ctl completion bash)`,
		SilenceUsage:  true,
		SilenceErrors: true, // Main prints them
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("server") {
				o.server = cmp.Or(os.Getenv(ctlServerEnv), api.DefaultServer)
			}
			if want := outputs(cmd); !slices.Contains(want, o.output) {
				return fmt.Errorf("-o %q: want %s", o.output, strings.Join(want, " or "))
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
	pf.StringVar(&o.server, "server", "", "ocm-server's HTTP API, HOST:PORT or an http:// URL (default $"+ctlServerEnv+", else "+api.DefaultServer+")")
	pf.StringVarP(&o.output, "output", "o", "table", "output format: table or json (the API's JSON, one object per line); tree also dot (Graphviz)")
	pf.DurationVar(&o.timeout, "timeout", api.DefaultTimeout, "time the server has to answer each request")
	pf.StringVar(&o.token, "token", "", "the server's token, sent as a bearer token: actions need it when the server has one (default $"+ctlTokenEnv+")")
	root.AddCommand(o.treeCommand(), o.nodesCommand(), o.streamsCommand(),
		o.reconnectCommand(), o.kickCommand(), o.drainCommand(),
		o.policyCommand(), o.watchCommand(), o.urlCommand())
	_ = root.RegisterFlagCompletionFunc("output", completeOutputs)
	for _, c := range root.Commands() {
		switch c.Name() {
		case "tree", "watch":
			c.ValidArgsFunction = firstArg(o.completeStreams)
		case "reconnect", "kick", "drain":
			c.ValidArgsFunction = firstArg(o.completeNodes(false))
		case "policy":
			c.ValidArgsFunction = completePolicies
		}
		if c.Name() == "reconnect" {
			_ = c.RegisterFlagCompletionFunc("stream", o.completeStreams)
			_ = c.RegisterFlagCompletionFunc("to", o.completeNodes(true))
		}
	}
	return root
}

// outputs lists the -o values cmd takes.
func outputs(cmd *cobra.Command) []string {
	if cmd.Name() == "tree" {
		return []string{"table", "json", "dot"}
	}
	return []string{"table", "json"}
}

// client returns the API client for --server.
func (o *ctlOptions) client() (*api.Client, error) {
	c, err := api.New(cmp.Or(o.server, os.Getenv(ctlServerEnv), api.DefaultServer))
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	c.HTTP.Timeout = o.timeout
	c.Token = cmp.Or(o.token, os.Getenv(ctlTokenEnv))
	return c, nil
}

// withClient is a RunE that makes the API client first.
func (o *ctlOptions) withClient(run func(cmd *cobra.Command, c *api.Client, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		c, err := o.client()
		if err != nil {
			return err
		}
		return run(cmd, c, args)
	}
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
