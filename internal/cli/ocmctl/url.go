package ocmctl

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/streamurl"
)

type ctlURLOptions struct {
	mediator string
}

// ctlURL is url's -o json line.
type ctlURL struct {
	URL    string `json:"url"`    // what a player opens on the mediator
	Stream string `json:"stream"` // the stream's key: the normalised origin URL
	Origin string `json:"origin"` // the origin's HOST:PORT
	Media  string `json:"media"`
}

func (o *ctlOptions) urlCommand() *cobra.Command {
	uo := &ctlURLOptions{}
	cmd := &cobra.Command{
		Use:   "url MEDIA MSHOST[:PORT] | url rtsp://MSHOST[:PORT]/MEDIA",
		Short: "Print the enhanced URL a player opens on a mediator to get a stream",
		Long: `url prints the enhanced URL that makes a local mediator (rtsp-mediator or
ocm-relay at --mediator) fetch MEDIA from the origin MSHOST[:PORT] through
the overlay: rtsp://MEDIATOR/MEDIA?MSHOST:PORT. The origin is normalised as
the overlay keys streams: the host in lower case, port 554 when absent,
IPv6 addresses in brackets. The origin URL rtsp://MSHOST[:PORT]/MEDIA may be
given instead of MEDIA and MSHOST. The server is not contacted.`,
		Example: `  ocm-ctl url live 10.0.0.1
  # rtsp://localhost:8554/live?10.0.0.1:554

  ocm-ctl url cams/door Origin.example:8554 --mediator 192.168.1.20:8555
  # rtsp://192.168.1.20:8555/cams/door?origin.example:8554

  ffplay "$(ocm-ctl url rtsp://10.0.0.1/live)"`,
		Args: ctlArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := cli.CheckHostPort(uo.mediator); err != nil {
				return fmt.Errorf("--mediator: %w", err)
			}
			var org streamurl.Origin
			var err error
			if len(args) == 1 {
				if !strings.HasPrefix(strings.ToLower(args[0]), "rtsp://") {
					return fmt.Errorf("%q: give MEDIA MSHOST[:PORT], or the origin URL rtsp://MSHOST[:PORT]/MEDIA", args[0])
				}
				org, err = streamurl.Parse(args[0])
			} else {
				org, err = streamurl.ParseEnhanced(args[0], url.QueryEscape(args[1]))
			}
			if err != nil {
				return err
			}
			l := ctlURL{URL: org.EnhancedURL(uo.mediator), Stream: org.URL(), Origin: org.Addr(), Media: org.Media}
			w := cmd.OutOrStdout()
			if o.output == "json" {
				b, err := json.Marshal(l)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(w, "%s\n", b)
				return err
			}
			_, err = fmt.Fprintln(w, l.URL)
			return err
		},
	}
	cmd.Flags().StringVar(&uo.mediator, "mediator", ctlDefaultMediator, "the mediator's RTSP address, HOST:PORT, as the player reaches it")
	return cmd
}
