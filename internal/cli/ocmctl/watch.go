package ocmctl

import (
	"bytes"
	"context"
	"encoding/json"
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
		Short: "Redraw the trees as they change, until interrupted",
		Long: `watch prints what ocm-ctl tree prints, then follows the server's live
event stream (GET /api/v1/events) and redraws whenever the trees change,
at most once per --interval (a debounce: a burst of events is one
redraw), until Ctrl-C (or --count drawings). On a terminal the screen is
cleared before each redraw; otherwise each drawing follows the last under
a time stamp line. With -o json it prints the events themselves, one JSON
line each (the lines ocm-server prints; "reset" when events were lost
and the trees should be fetched again), --count of them.

When the connection drops, watch reconnects and resumes after the last
event it saw (the server keeps the last --event-ring). When the server
cannot be reached or the stream is unknown, the error is shown and watch
keeps trying. A server without the event stream is polled every
--interval instead (then -o json prints the trees each round).`,
		Example: `  ocm-ctl watch
  ocm-ctl watch rtsp://10.0.0.1/live --interval 500ms
  ocm-ctl watch -o json --count 10 > events.jsonl`,
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
	cmd.Flags().DurationVar(&wo.interval, "interval", time.Second,
		"shortest time between redraws (events within it make one redraw); the polling period against a server without events")
	cmd.Flags().IntVar(&wo.count, "count", 0, "stop after this many drawings, or events with -o json (0: until interrupted)")
	return cmd
}

// watchRound is one fetch of the trees.
type watchRound struct {
	trees []api.Tree
	raw   json.RawMessage
	list  bool
	id    int64 // the last event the trees include
	live  bool  // the server said id: it has the event stream
	err   error
}

// fetchRound fetches the trees of args with the event id they include.
func (o *ctlOptions) fetchRound(ctx context.Context, c *api.Client, args []string) watchRound {
	r := watchRound{list: len(args) == 0}
	stream := ""
	if len(args) == 1 {
		stream, r.err = ctlStream(args[0])
		if r.err != nil {
			return r
		}
	}
	r.raw, r.id, r.live, r.err = c.TreesAt(ctx, stream)
	if r.err != nil {
		return r
	}
	if r.list {
		r.err = json.Unmarshal(r.raw, &r.trees)
	} else {
		r.trees = make([]api.Tree, 1)
		r.err = json.Unmarshal(r.raw, &r.trees[0])
	}
	if r.err != nil {
		r.err = fmt.Errorf("GET /api/v1/tree: unexpected answer: %w", r.err)
	}
	return r
}

func (o *ctlOptions) watch(cmd *cobra.Command, c *api.Client, args []string, wo *ctlWatchOptions) error {
	ctx, w, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	term := o.output == "table" && o.isTerminal(w)
	// draw prints one round, head saying what it is; it returns the
	// round's error and the write's.
	draw := func(n int, head string, r watchRound) (error, error) {
		var frame bytes.Buffer
		if o.output == "table" {
			if term {
				frame.WriteString("\x1b[H\x1b[2J")
			} else if n > 1 {
				frame.WriteByte('\n')
			}
			fmt.Fprintf(&frame, "%s from %s at %s\n\n", head, c.Server(), o.now().Format("2006-01-02 15:04:05"))
		}
		err := r.err
		if err == nil {
			err = o.printTrees(&frame, r.trees, r.raw, r.list)
		}
		if err != nil && term {
			fmt.Fprintf(&frame, "error: %v\n", err)
		}
		if _, werr := w.Write(frame.Bytes()); werr != nil {
			return err, werr
		}
		if err != nil && !term {
			fmt.Fprintf(stderr, "%s: %v\n", cmd.Root().Name(), err)
		}
		return err, nil
	}
	first := o.fetchRound(ctx, c, args)
	if ctx.Err() != nil {
		return nil // interrupted: the normal end
	}
	if first.live {
		return o.watchLive(ctx, c, args, wo, first, 0, draw, w, stderr, cmd.Root().Name())
	}
	// A server without the event stream (or not answering yet): poll,
	// until a round finds the stream.
	tick := time.NewTicker(wo.interval)
	defer tick.Stop()
	r := first
	for n := 1; ; n++ {
		if n > 1 {
			r = o.fetchRound(ctx, c, args)
			if ctx.Err() != nil {
				return nil
			}
			if r.live {
				return o.watchLive(ctx, c, args, wo, r, n-1, draw, w, stderr, cmd.Root().Name())
			}
		}
		err, werr := draw(n, fmt.Sprintf("every %v", wo.interval), r)
		if werr != nil {
			return werr
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

// watchLive draws the first round (after drawn ones), then follows the
// event stream.
func (o *ctlOptions) watchLive(ctx context.Context, c *api.Client, args []string, wo *ctlWatchOptions, first watchRound,
	drawn int, draw func(int, string, watchRound) (error, error), w, stderr io.Writer, name string) error {
	head := func(r watchRound) string { return fmt.Sprintf("live (event %d)", r.id) }
	n, events := drawn, 0
	if o.output != "json" {
		n++
		err, werr := draw(n, head(first), first)
		if werr != nil {
			return werr
		}
		if wo.count > 0 && n >= wo.count {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	evs, errs := make(chan api.Event, 256), make(chan error, 1)
	go follow(ctx, c, first.id, wo.interval, evs, errs)
	var redraw <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-errs:
			fmt.Fprintf(stderr, "%s: %v (reconnecting)\n", name, err)
		case e := <-evs:
			if o.output == "json" {
				if _, err := fmt.Fprintln(w, e.Data); err != nil {
					return err
				}
				if events++; wo.count > 0 && events >= wo.count {
					return nil
				}
				continue
			}
			if redraw == nil {
				redraw = time.After(wo.interval)
			}
		case <-redraw:
			redraw = nil
			r := o.fetchRound(ctx, c, args)
			if ctx.Err() != nil {
				return nil
			}
			n++
			err, werr := draw(n, head(r), r)
			if werr != nil {
				return werr
			}
			if wo.count > 0 && n >= wo.count {
				return err
			}
		}
	}
}

// follow reads the event stream from after id, reconnecting after the
// last event seen whenever it drops, until ctx ends.
func follow(ctx context.Context, c *api.Client, id int64, retry time.Duration, evs chan<- api.Event, errs chan<- error) {
	for ctx.Err() == nil {
		es, err := c.Events(ctx, id)
		for err == nil {
			var e api.Event
			if e, err = es.Next(); err == nil {
				if e.HasID {
					id = e.ID
				}
				select {
				case evs <- e:
				case <-ctx.Done():
				}
			}
		}
		if es != nil {
			es.Close()
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case errs <- err:
		default:
		}
		select {
		case <-ctx.Done():
		case <-time.After(max(retry, 100*time.Millisecond)):
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
