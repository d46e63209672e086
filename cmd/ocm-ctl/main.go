// Command ocm-ctl is the operator's command for ocm-server's HTTP API:
// trees, nodes, streams, reconnect, kick, drain, policy, watch and url;
// see internal/cli/ocmctl.NewCommand.
package main

import (
	"os"

	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/cli/ocmctl"
)

func main() { os.Exit(cli.Main(ocmctl.NewCommand())) }
