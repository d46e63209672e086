// Command rtsp-mediator is the local RTSP server of the overlay; see
// internal/cli/rtspmediator.NewCommand.
package main

import (
	"os"

	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/cli/rtspmediator"
)

func main() { os.Exit(cli.Main(rtspmediator.NewCommand())) }
