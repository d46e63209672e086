// Command ocm-relay is the per-host agent of the overlay; see internal/cli/ocmrelay.NewCommand.
package main

import (
	"os"

	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/cli/ocmrelay"
)

func main() { os.Exit(cli.Main(ocmrelay.NewCommand())) }
