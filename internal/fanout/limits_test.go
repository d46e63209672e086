package fanout

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/testutil/udptest"
)

// Adds beyond MaxDestinations fail with ErrTooMany and change nothing; a
// removal makes room again.
func TestMaxDestinations(t *testing.T) {
	const limit = 5
	f := startFanout(t, &Fanout{From: "udp://127.0.0.1:0", MaxDestinations: limit})
	for i := range limit {
		if _, err := f.Add(fmt.Sprintf("udp://127.1.0.%d:5004", i+1)); err != nil {
			t.Fatalf("add %d: %v", i, err)
		}
	}
	_, err := f.Add("udp://127.1.0.99:5004")
	if !errors.Is(err, ErrTooMany) || !strings.Contains(err.Error(), "127.1.0.99:5004") || !strings.Contains(err.Error(), "5 is the limit") {
		t.Fatalf("add over the limit: %v", err)
	}
	if r := f.Handle([]byte(`{"op":"add","to":"udp://127.1.0.98:5004"}`)); r.OK || !strings.Contains(r.Error, "too many destinations") {
		t.Fatalf("add over the limit by a command: %+v", r)
	}
	if n := len(f.List()); n != limit {
		t.Fatalf("%d outputs after refused adds, want %d", n, limit)
	}
	if _, err := f.Remove("udp://127.1.0.1:5004"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Add("udp://127.1.0.99:5004"); err != nil {
		t.Fatalf("add after a removal: %v", err)
	}
}

// Up to the detail every output is listed; beyond it the summary sums
// them all and names the failing one first among the worst, and the line
// it makes stays small.
func TestSummary(t *testing.T) {
	const outputs, detail, packets = 40, 32, 50
	bad := deadPort(t)
	rs := []*udptest.Receiver{udptest.NewReceiver(t), udptest.NewReceiver(t)}
	to := []string{rs[0].URL(), rs[1].URL(), "udp://" + bad.String()}
	for i := len(to); i < outputs; i++ {
		to = append(to, fmt.Sprintf("udp://127.1.0.%d:5004", i))
	}
	f := &Fanout{From: "udp://127.0.0.1:0?rtcp=0", To: to, Senders: 1}
	f.wrapWriter = func(w batchWriter) batchWriter { return &fakeSocket{w: w, failAddr: bad} }
	startFanout(t, f)
	s := udptest.NewRTPSender(t, inputAddr(f), 200)
	for range packets / 10 {
		s.Send(t, 10)
		time.Sleep(time.Millisecond)
	}
	waitStats(t, f, rs, "every packet to be sent or failed", func() bool {
		for i, o := range f.Stats().Out {
			if i == 2 && o.Errors != packets || i != 2 && o.Packets != packets {
				return false
			}
		}
		return allReceived(rs, packets)()
	})

	sum := f.Summary(outputs)
	if sum.Outputs != outputs || len(sum.Out) != outputs || sum.Worst != nil || sum.Drops != packets {
		t.Errorf("summary with detail %d: %d outputs, %d listed, worst %v, drops %d", outputs, sum.Outputs, len(sum.Out), sum.Worst, sum.Drops)
	}

	sum = f.Summary(detail)
	b, err := json.Marshal(sum)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary line of %d outputs: %d bytes: %s", outputs, len(b), b)
	if sum.Out != nil || sum.Outputs != outputs || sum.In.Packets != packets || sum.Drops != packets {
		t.Errorf("summary: %+v", sum)
	}
	want := OutTotals{Packets: (outputs - 1) * packets, Bytes: (outputs - 1) * packets * 200, Drops: packets, Errors: packets, WithDrops: 1, WithErrors: 1}
	if sum.Total != want {
		t.Errorf("totals %+v, want %+v", sum.Total, want)
	}
	if len(sum.Worst) != 1 || sum.Worst[0].To != "udp://"+bad.String() || sum.Worst[0].LastError == "" {
		t.Errorf("worst %+v, want only the failing output", sum.Worst)
	}
	if len(b) > 2048 {
		t.Errorf("summary line of %d bytes", len(b))
	}
}

func TestAddWorstKeepsTheWorst(t *testing.T) {
	var worst []OutStats
	for i, d := range []uint64{3, 9, 1, 9, 4, 7, 2, 8, 6, 5, 10, 0} {
		worst = addWorst(worst, OutStats{To: fmt.Sprint(i), Drops: d, Errors: d % 2})
	}
	var got []string
	for _, o := range worst {
		got = append(got, fmt.Sprintf("%s:%d", o.To, o.Drops))
	}
	if want := "10:10 1:9 3:9 7:8 5:7 8:6 9:5 4:4"; strings.Join(got, " ") != want {
		t.Errorf("worst %s, want %s", strings.Join(got, " "), want)
	}
}
