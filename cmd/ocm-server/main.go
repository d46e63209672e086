// Command ocm-server keeps the overlay's relay trees; see
// internal/cli/ocmserver.NewCommand.
package main

import (
	"os"

	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/cli/ocmserver"
)

func main() { os.Exit(cli.Main(ocmserver.NewCommand())) }
