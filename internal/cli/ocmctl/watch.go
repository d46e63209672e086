package ocmctl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/ocm-overlay/ocm/internal/api"
)

type ctlWatchOptions struct {
	interval time.Duration
	count    int
}

func (o *ctlOptions) watchCommand() *cobra.Command {
	wo := &ctlWatchOptions{}
	cmd := &cobra.Command{
		Use:   "watch [STREAM]",
		Short: "Redraw the trees every --interval until interrupted",
		Long: `watch prints what ocm-ctl tree prints, again every --interval, until
Ctrl-C (or --count times). On a terminal the screen is cleared before each
redraw; otherwise each drawing follows the last under a time stamp line.
When the server cannot be reached or the stream is unknown, the error is
shown and watch keeps trying. With -o json each round prints the trees as
JSON lines.`,
		Example: `  ocm-ctl watch
  ocm-ctl watch rtsp://10.0.0.1/live --interval 500ms
  ocm-ctl watch -o json --count 10 > trees.jsonl`,
		Args: ctlArgs(0, 1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if wo.interval <= 0 {
				return errors.New("--interval must be positive")
			}
			if wo.count < 0 {
				return errors.New("--count must not be negative")
			}
			if len(args) == 1 {
				if _, err := ctlStream(args[0]); err != nil {
					return err
				}
			}
			c, err := o.client()
			if err != nil {
				return err
			}
			return o.watch(cmd, c, args, wo)
		},
	}
	cmd.Flags().DurationVar(&wo.interval, "interval", 2*time.Second, "time between redraws")
	cmd.Flags().IntVar(&wo.count, "count", 0, "stop after this many redraws (0: until interrupted)")
	return cmd
}

func (o *ctlOptions) watch(cmd *cobra.Command, c *api.Client, args []string, wo *ctlWatchOptions) error {
	ctx, w, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	term := o.output == "table" && o.isTerminal(w)
	tick := time.NewTicker(wo.interval)
	defer tick.Stop()
	for n := 1; ; n++ {
		trees, raw, list, err := o.fetchTrees(ctx, c, args)
		if ctx.Err() != nil {
			return nil // interrupted: the normal end
		}
		var frame bytes.Buffer
		if o.output == "table" {
			if term {
				frame.WriteString("\x1b[H\x1b[2J")
			} else if n > 1 {
				frame.WriteByte('\n')
			}
			fmt.Fprintf(&frame, "every %v from %s at %s\n\n", wo.interval, c.Server(), o.now().Format("2006-01-02 15:04:05"))
		}
		if err == nil {
			err = o.printTrees(&frame, trees, raw, list)
		}
		if err != nil && term {
			fmt.Fprintf(&frame, "error: %v\n", err)
		}
		if _, werr := w.Write(frame.Bytes()); werr != nil {
			return werr
		}
		if err != nil && !term {
			fmt.Fprintf(stderr, "%s: %v\n", cmd.Root().Name(), err)
		}
		if wo.count > 0 && n >= wo.count {
			return err // the last round's
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
