// Command ocm-ctl is the operator's command for ocm-server's HTTP API:
// trees, nodes, streams, reconnect, kick, drain, policy, watch and url;
// see internal/cli.NewCtlCommand.
package main

import (
	"os"

	"github.com/ocm-overlay/ocm/internal/cli"
)

func main() { os.Exit(cli.Main(cli.NewCtlCommand())) }
