package rtpfanout

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/fanout"
	"github.com/ocm-overlay/ocm/internal/testutil"
)

// fanoutInput is the bound input of a ready line.
func fanoutInput(t *testing.T, ready map[string]any) netip.AddrPort {
	t.Helper()
	from, _ := ready["from"].(string)
	from, _, _ = strings.Cut(strings.TrimPrefix(from, "udp://"), "?")
	in, err := netip.ParseAddrPort(from)
	if err != nil || in.Port() == 0 {
		t.Fatalf("ready line has no bound input: %v", ready)
	}
	return in
}

// loopbackDest is the i-th of many distinct destinations on 127.1.0.0/16:
// loopback, where nobody listens on port 5004.
func loopbackDest(i int) string {
	return fmt.Sprintf("udp://127.1.%d.%d:5004", i/250, i%250+1)
}

// 10,000 adds hold only the default limit of 1024 destinations; each add
// beyond it gets an error reply that says why, and the outputs accepted
// keep receiving.
func TestFanoutCommandDestinationLimit(t *testing.T) {
	const adds, limit = 10000, 1024
	a, aCount := fanoutTestReceiver(t)
	r := startFanoutCmd(t, "--from", "udp://127.0.0.1:0?rtcp=0", "--to", a, "--stats-interval", "0")
	in := fanoutInput(t, r.next(t, "ready"))

	accepted, refused := 1, 0 // --to a
	var firstErr string
	for i := range adds {
		rep := r.command(t, `{"op":"add","to":"`+loopbackDest(i)+`"}`)
		switch {
		case rep["ok"] == true:
			accepted++
		case rep["ok"] == false:
			refused++
			if firstErr == "" {
				firstErr, _ = rep["error"].(string)
			}
		default:
			t.Fatalf("add %d: reply %v", i, rep)
		}
	}
	t.Logf("%d adds: %d accepted, %d refused: %q", adds, accepted, refused, firstErr)
	if accepted != limit || refused != adds+1-limit {
		t.Fatalf("%d accepted and %d refused, want %d and %d", accepted, refused, limit, adds+1-limit)
	}
	for _, want := range []string{"too many destinations", "1024", "--max-destinations"} {
		if !strings.Contains(firstErr, want) {
			t.Errorf("error %q does not say %q", firstErr, want)
		}
	}
	if rep := r.command(t, `{"op":"list"}`); len(rep["to"].([]any)) != limit {
		t.Errorf("list holds %d outputs, want %d", len(rep["to"].([]any)), limit)
	}

	// The relay goes on, and a removal makes room for one more.
	fanoutSend(t, in, 0, 10)
	fanoutWait(t, "10 packets at a", func() bool { return aCount.Load() == 10 })
	if rep := r.command(t, `{"op":"remove","to":"`+loopbackDest(0)+`"}`); rep["ok"] != true {
		t.Fatalf("remove: %v", rep)
	}
	if rep := r.command(t, `{"op":"add","to":"`+loopbackDest(adds)+`"}`); rep["ok"] != true {
		t.Fatalf("add after a removal: %v", rep)
	}
	if rep := r.command(t, `{"op":"add","to":"`+loopbackDest(adds+1)+`"}`); rep["ok"] != false {
		t.Fatalf("add over the limit again: %v", rep)
	}
}

func TestFanoutCommandDestinationLimitFlag(t *testing.T) {
	a, _ := fanoutTestReceiver(t)
	b, _ := fanoutTestReceiver(t)
	r := startFanoutCmd(t, "--from", "udp://127.0.0.1:0", "--to", a, "--max-destinations", "2", "--stats-interval", "0")
	r.next(t, "ready")
	if rep := r.command(t, `{"op":"add","to":"`+b+`"}`); rep["ok"] != true {
		t.Fatalf("add within the limit: %v", rep)
	}
	rep := r.command(t, `{"op":"add","to":"`+loopbackDest(0)+`","id":3}`)
	if rep["ok"] != false || rep["id"] != float64(3) || !strings.Contains(fmt.Sprint(rep["error"]), "2") {
		t.Fatalf("add over the limit: %v", rep)
	}
}

// With many destinations the periodic stats line carries their count,
// totals and the worst few, not one entry each: its size does not grow
// with the destinations.
func TestFanoutCommandStatsLineBounded(t *testing.T) {
	const dests, maxLine = 500, 4096
	a, _ := fanoutTestReceiver(t)
	r := startFanoutCmd(t, "--from", "udp://127.0.0.1:0?rtcp=0", "--to", a, "--stats-interval", "20ms")
	in := fanoutInput(t, r.next(t, "ready"))
	for i := range dests - 1 {
		if rep := r.command(t, `{"op":"add","to":"`+loopbackDest(i)+`"}`); rep["ok"] != true {
			t.Fatalf("add %d: %v", i, rep)
		}
	}
	fanoutSend(t, in, 0, 5)
	for {
		st := r.next(t, "stats")
		n, _ := st["outputs"].(float64)
		if out, ok := st["out"].([]any); ok && n == 0 {
			n = float64(len(out)) // a line without the count
		}
		if n != dests {
			continue
		}
		b, _ := json.Marshal(st)
		if len(b) > maxLine {
			t.Fatalf("stats line of %d bytes for %d destinations, want at most %d", len(b), dests, maxLine)
		}
		// Until every packet is sent, then the totals say so.
		if total, ok := st["out_total"].(map[string]any); ok && total["packets"] == float64(5*dests) {
			t.Logf("stats line with %d destinations: %d bytes", dests, len(b))
			return
		}
	}
}

// Send errors at many outputs make one log line per interval, and the
// errors remembered per output are only those of a listed stats line.
func TestFanoutSendErrorsLogBounded(t *testing.T) {
	var logs testutil.Buffer
	log := cli.NewLogger(&logs, false)
	var out testutil.Buffer
	ev := event.NewWriter(&out)
	var seen sendErrors

	listed := fanout.Summary{Outputs: 2, Out: []fanout.OutStats{{To: "udp://a:1", Errors: 2}, {To: "udp://b:1"}}}
	seen.emit(ev, log, listed)
	seen.emit(ev, log, listed) // nothing new
	if n := strings.Count(logs.String(), "send errors"); n != 1 || !strings.Contains(logs.String(), "to=udp://a:1") {
		t.Fatalf("%d log lines for one erring output:\n%s", n, logs.String())
	}

	summed := fanout.Summary{Outputs: 1000, Total: fanout.OutTotals{Errors: 1002, WithErrors: 1000},
		Worst: []fanout.OutStats{{To: "udp://w:1", Drops: 9, Errors: 9, LastError: "denied"}}}
	seen.emit(ev, log, summed)
	seen.emit(ev, log, summed)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "errors=1000") || !strings.Contains(lines[1], "worst=udp://w:1") {
		t.Fatalf("log after 1000 erring outputs:\n%s", logs.String())
	}
	if seen.byTo != nil {
		t.Errorf("errors remembered per output while summarised: %v", seen.byTo)
	}
	if st := out.Find(t, "stats"); len(st) != 4 || st[2]["outputs"] != float64(1000) || st[2]["out"] != nil {
		t.Errorf("stats lines: %v", st)
	}
}
