package main

// monitor: how long the monitor page (ocm-server's /) takes to draw its
// first picture of a big tree, in headless chromium: from navigation
// start to the page's "ocm-drawn" mark (window.ocmFirstDraw, after it
// fetched /api/v1/tree and drew it), at 1,000 and 10,000 relays; and how
// long finding the deepest relay with the search box takes (its
// ancestors expanded, the tree drawn again): the page's responsiveness. The
// relays are in-process protocol clients (hello, joined) of a real
// ocm-server, joined into a tree of fan-out monCapacity level by level;
// nobody plays the stream (the page's cost does not depend on it).
//
// Environment:
//   OCM_BENCH_MONITOR_SIZES  relay counts, comma-separated (default "1000,10000")
//   OCM_BENCH_MONITOR_LOADS  page loads per size, the median reported (default 3)

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ocm-overlay/ocm/internal/lab"
	"github.com/ocm-overlay/ocm/internal/wire"
)

func init() { register("monitor", runMonitorBench) }

const (
	monCapacity = 4 // children per relay, and the origin's
	monStream   = "rtsp://127.0.0.1:8554/monitor-bench"
	monWorkers  = 64
)

func runMonitorBench(ctx context.Context, o options) ([]result, error) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		return nil, errors.New("chromium not on PATH (Debian package chromium)")
	}
	sizes, err := envInts("OCM_BENCH_MONITOR_SIZES", []int{1000, 10000})
	if err != nil {
		return nil, err
	}
	loads, err := envInts("OCM_BENCH_MONITOR_LOADS", []int{3})
	if err != nil || len(loads) != 1 || loads[0] < 1 {
		return nil, fmt.Errorf("OCM_BENCH_MONITOR_LOADS: want one count >= 1 (%v)", err)
	}
	res := result{Case: "monitor", Metrics: map[string]any{}}
	for _, n := range sizes {
		ms, search, drawn, err := monitorFirstDraw(ctx, o, chromium, n, loads[0])
		if err != nil {
			return nil, fmt.Errorf("%d relays: %w", n, err)
		}
		res.Metrics[fmt.Sprintf("first_draw_ms_%d", n)] = ms
		res.Metrics[fmt.Sprintf("search_draw_ms_%d", n)] = search
		res.Notes = append(res.Notes, fmt.Sprintf("%d relays: %d boxes drawn (the rest collapsed), median of %d loads", n, drawn, loads[0]))
	}
	return []result{res}, nil
}

// monitorFirstDraw builds a tree of n relays and loads the page loads
// times, returning the median first-draw time, the median time to find
// the last relay with the search box (its ancestors expanded and the
// tree redrawn) and the boxes first drawn.
func monitorFirstDraw(ctx context.Context, o options, chromium string, n, loads int) (first, search float64, drawn int, err error) {
	// Heartbeats and reports of a minute: the clients send neither.
	srv, err := lab.StartServer(o.Lab, o.Tools, fmt.Sprintf("server (%d)", n), "--heartbeat", "1m",
		"--report-interval", "1m", "--origin-capacity", strconv.Itoa(monCapacity), "--stall-limit", "0")
	if err != nil {
		return 0, 0, 0, err
	}
	defer srv.Kill()
	clients, err := buildTree(ctx, srv.OCM, n)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	if err != nil {
		return 0, 0, 0, err
	}
	bctx, stop, err := lab.Browser(ctx, chromium)
	if err != nil {
		return 0, 0, 0, err
	}
	defer stop()
	var times, searches []float64
	find := fmt.Sprintf(`(() => { const s = document.getElementById('search'); s.value = %q; const t0 = performance.now();
		s.dispatchEvent(new KeyboardEvent('keydown', {key: 'Enter'}));
		return document.querySelector('g.found') ? performance.now() - t0 : -1; })()`, relayID(n-1))
	for range loads {
		lctx, cancel := context.WithTimeout(bctx, 2*lab.Patience)
		err := chromedp.Do(lctx, chromedp.Navigate("about:blank"), chromedp.Navigate("http://"+srv.HTTP+"/"))
		if err == nil {
			err = lab.PageWait(lctx, `document.body && document.body.dataset.drawn === 'true'`, 2*lab.Patience)
		}
		var ms float64
		if err == nil {
			ms, err = chromedp.Run(lctx, chromedp.Evaluate[float64](`window.ocmFirstDraw`))
		}
		if err == nil {
			var s string
			s, err = chromedp.Run(lctx, chromedp.Evaluate[string](`document.body.dataset.nodes`))
			drawn, _ = strconv.Atoi(s)
		}
		var found float64
		if err == nil {
			found, err = chromedp.Run(lctx, chromedp.Evaluate[float64](find))
			if err == nil && found < 0 {
				err = fmt.Errorf("the search did not find %s", relayID(n-1))
			}
		}
		cancel()
		if err != nil {
			return 0, 0, 0, err
		}
		times = append(times, ms)
		searches = append(searches, found)
	}
	return medianTenth(times), medianTenth(searches), drawn, nil
}

// medianTenth is the median of v, to a tenth.
func medianTenth(v []float64) float64 {
	slices.Sort(v)
	return float64(int(v[len(v)/2]*10)) / 10
}

// treeParent is relay i's parent in a tree of fan-out monCapacity under
// the origin: relays 0..3 under the origin, then four under each.
func treeParent(i int) string {
	if i < monCapacity {
		return wire.OriginID
	}
	return relayID((i - monCapacity) / monCapacity)
}

func relayID(i int) string { return fmt.Sprintf("r%05d", i) }

// buildTree connects n relays and joins them level by level (a parent
// joins before its children), monWorkers at a time.
func buildTree(ctx context.Context, addr string, n int) ([]*wire.Client, error) {
	clients := make([]*wire.Client, n)
	var (
		mu    sync.Mutex
		first error
	)
	each := func(from, to int, fn func(i int) error) error {
		var wg sync.WaitGroup
		next := make(chan int)
		for range monWorkers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					if err := fn(i); err != nil {
						mu.Lock()
						if first == nil {
							first = fmt.Errorf("%s: %w", relayID(i), err)
						}
						mu.Unlock()
					}
				}
			}()
		}
		for i := from; i < to; i++ {
			next <- i
		}
		close(next)
		wg.Wait()
		return first
	}
	err := each(0, n, func(i int) error {
		c, err := wire.Dial("tcp", addr, 10*time.Second)
		if err != nil {
			return err
		}
		cl := wire.NewClient(c)
		clients[i] = cl
		hctx, cancel := context.WithTimeout(ctx, lab.Patience)
		defer cancel()
		_, err = cl.Hello(hctx, &wire.Hello{Node: relayID(i), RTSP: "127.0.0.1:9", Probe: "127.0.0.1:9", Willing: true,
			Capacity: monCapacity, Cores: 2, Agent: "bench-monitor"})
		return err
	})
	if err != nil {
		return clients, err
	}
	// Level by level: level L holds relays [start, start+width).
	for start, width := 0, monCapacity; start < n; start, width = start+width, width*monCapacity {
		if err := each(start, min(start+width, n), func(i int) error {
			jctx, cancel := context.WithTimeout(ctx, lab.Patience)
			defer cancel()
			_, err := clients[i].Join(jctx, monStream, treeParent(i))
			return err
		}); err != nil {
			return clients, err
		}
	}
	return clients, nil
}

// envInts reads a comma-separated list of counts from the environment.
func envInts(name string, def []int) ([]int, error) {
	v := strings.TrimSpace(os.Getenv(name))
	if v == "" {
		return def, nil
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%s: %q is not a count >= 1", name, f)
		}
		out = append(out, n)
	}
	return out, nil
}
