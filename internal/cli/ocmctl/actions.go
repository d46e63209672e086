package ocmctl

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/cli"
)

// printSent prints an action's answer.
func (o *ctlOptions) printSent(w io.Writer, what string, sent api.Sent, raw json.RawMessage, none string) error {
	if o.output == "json" {
		return printJSON(w, raw, false)
	}
	if len(sent.Sent) == 0 {
		_, err := fmt.Fprintf(w, "%s: %s\n", what, none)
		return err
	}
	fmt.Fprintf(w, "%s: %s sent\n", what, cli.Plural(len(sent.Sent), "message"))
	t := cli.NewTable(w)
	t.Header("NODE", "MESSAGE", "STREAM", "SWITCH TO")
	for _, s := range sent.Sent {
		if err := t.Append(s.Node, cmp.Or(s.Type, "-"), cmp.Or(s.Stream, "-"), cmp.Or(s.Target, "-")); err != nil {
			return err
		}
	}
	return t.Render()
}
