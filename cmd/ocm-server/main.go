// Command ocm-server keeps the overlay's relay trees; see
// internal/cli.NewServerCommand.
package main

import (
	"os"

	"github.com/ocm-overlay/ocm/internal/cli"
)

func main() { os.Exit(cli.Main(cli.NewServerCommand())) }
