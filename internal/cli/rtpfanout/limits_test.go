package rtpfanout

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/ocm-overlay/ocm/internal/cli"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/fanout"
	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/testutil/udptest"
)

// fanoutInput is the bound input of a ready line.
func fanoutInput(t *testing.T, ready event.FanoutReady) netip.AddrPort {
	t.Helper()
	from, _, _ := strings.Cut(strings.TrimPrefix(ready.From, "udp://"), "?")
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
	ra := udptest.NewReceiver(t)
	a := ra.URL()
	r := startFanoutCmd(t, "--from", "udp://127.0.0.1:0?rtcp=0", "--to", a, "--stats-interval", "0")
	in := fanoutInput(t, next[event.FanoutReady](t, r))

	accepted, refused := 1, 0 // --to a
	var firstErr string
	for i := range adds {
		rep := r.command(t, `{"op":"add","to":"`+loopbackDest(i)+`"}`)
		switch {
		case rep.OK:
			accepted++
		default:
			refused++
			if firstErr == "" {
				firstErr = rep.Error
			}
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
	if rep := r.command(t, `{"op":"list"}`); len(rep.To.([]any)) != limit {
		t.Errorf("list holds %d outputs, want %d", len(rep.To.([]any)), limit)
	}

	// The relay goes on, and a removal makes room for one more.
	udptest.NewRTPSender(t, in, 200).Send(t, 10)
	udptest.WaitFor(t, "10 packets at a", func() bool { return ra.Packets.Load() == 10 })
	if rep := r.command(t, `{"op":"remove","to":"`+loopbackDest(0)+`"}`); !rep.OK {
		t.Fatalf("remove: %v", rep)
	}
	if rep := r.command(t, `{"op":"add","to":"`+loopbackDest(adds)+`"}`); !rep.OK {
		t.Fatalf("add after a removal: %v", rep)
	}
	if rep := r.command(t, `{"op":"add","to":"`+loopbackDest(adds+1)+`"}`); rep.OK {
		t.Fatalf("add over the limit again: %v", rep)
	}
}

func TestFanoutCommandDestinationLimitFlag(t *testing.T) {
	a, b := udptest.NewReceiver(t).URL(), udptest.NewReceiver(t).URL()
	r := startFanoutCmd(t, "--from", "udp://127.0.0.1:0", "--to", a, "--max-destinations", "2", "--stats-interval", "0")
	next[event.FanoutReady](t, r)
	if rep := r.command(t, `{"op":"add","to":"`+b+`"}`); !rep.OK {
		t.Fatalf("add within the limit: %v", rep)
	}
	rep := r.command(t, `{"op":"add","to":"`+loopbackDest(0)+`","id":3}`)
	if rep.OK || string(rep.ID) != "3" || !strings.Contains(rep.Error, "2") {
		t.Fatalf("add over the limit: %v", rep)
	}
}

// With many destinations the periodic stats line carries their count,
// totals and the worst few, not one entry each: its size does not grow
// with the destinations.
func TestFanoutCommandStatsLineBounded(t *testing.T) {
	const dests, maxLine = 500, 4096
	a := udptest.NewReceiver(t).URL()
	r := startFanoutCmd(t, "--from", "udp://127.0.0.1:0?rtcp=0", "--to", a, "--stats-interval", "20ms")
	in := fanoutInput(t, next[event.FanoutReady](t, r))
	for i := range dests - 1 {
		if rep := r.command(t, `{"op":"add","to":"`+loopbackDest(i)+`"}`); !rep.OK {
			t.Fatalf("add %d: %v", i, rep)
		}
	}
	udptest.NewRTPSender(t, in, 200).Send(t, 5)
	for {
		st := next[event.FanoutStats](t, r)
		n := st.Outputs
		if st.Out != nil && n == 0 {
			n = len(st.Out) // a line without the count
		}
		if n != dests {
			continue
		}
		var line bytes.Buffer
		event.NewWriter(&line).Emit(st) // as the tool printed it
		b := bytes.TrimSpace(line.Bytes())
		if len(b) > maxLine {
			t.Fatalf("stats line of %d bytes for %d destinations, want at most %d", len(b), dests, maxLine)
		}
		// Until every packet is sent, then the totals say so.
		if st.Total != nil && st.Total.Packets == uint64(5*dests) {
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
	if st := testutil.Find[event.FanoutStats](t, &out); len(st) != 4 || st[2].Outputs != 1000 || st[2].Out != nil {
		t.Errorf("stats lines: %v", st)
	}
}
