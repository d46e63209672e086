// Command rtp-fanout relays one RTP input to many unicast and multicast
// UDP destinations; see rtp-fanout --help.
package main

import (
	"os"

	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/cli/rtpfanout"
)

func main() { os.Exit(cli.Main(rtpfanout.NewCommand())) }
