// Command ocm-relay is the per-host agent of the overlay; see internal/cli.
package main

import (
	"os"

	"github.com/ocm-overlay/ocm/internal/cli"
)

func main() { os.Exit(cli.Main(cli.NewRelayCommand())) }
