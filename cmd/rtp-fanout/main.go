// Command rtp-fanout relays one RTP input to many unicast and multicast
// UDP destinations; see rtp-fanout --help.
package main

import (
	"os"

	"github.com/ocm-overlay/ocm/internal/cli"
)

func main() { os.Exit(cli.Main(cli.NewFanoutCommand())) }
