// Command ocm-probe measures overlay relays and ranks them as ocm-relay
// would; see internal/cli.NewProbeCommand.
package main

import (
	"os"

	"github.com/ocm-overlay/ocm/internal/cli"
)

func main() { os.Exit(cli.Main(cli.NewProbeCommand())) }
