// Command ocm-probe measures overlay relays and ranks them as ocm-relay
// would; see internal/cli/ocmprobe.NewCommand.
package main

import (
	"os"

	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/cli/ocmprobe"
)

func main() { os.Exit(cli.Main(ocmprobe.NewCommand())) }
