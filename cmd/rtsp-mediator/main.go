// Command rtsp-mediator is the local RTSP server of the overlay; see
// internal/cli for its flags.
package main

import (
	"os"

	"github.com/ocm-overlay/ocm/internal/cli"
)

func main() { os.Exit(cli.Main(cli.NewMediatorCommand())) }
