package probe

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/testutil"
)

const stream = "rtsp://ms:554/x"

func TestProbeResponder(t *testing.T) {
	want := Info{Node: "n1", Clients: 2, Level: 3, Cores: 8, CPU: 0.25, FreeMem: 1 << 30, Willing: true, FreeCapacity: 2}
	var asked []string
	r := startResponder(t, func(s string) Info {
		asked = append(asked, s) // only the responder's goroutine calls Info
		return fixedInfo(want, stream)(s)
	})
	res := Probe(context.Background(), r.Addr(), stream, time.Second)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.Info != want {
		t.Errorf("info = %+v, want %+v", res.Info, want)
	}
	if res.RTT <= 0 || res.Addr != r.Addr() || res.Via != ViaUDP {
		t.Errorf("result = %+v", res)
	}
	// Another stream: level -1.
	res = Probe(context.Background(), r.Addr(), "rtsp://ms:554/other", time.Second)
	if res.Err != nil || res.Info.Level != -1 {
		t.Errorf("other stream: %+v", res)
	}
	r.Close()
	if len(asked) != 2 || asked[0] != stream {
		t.Errorf("Info asked for %q", asked)
	}
	if st := r.Stats(); st.Answered != 2 || st.Garbage != 0 {
		t.Errorf("stats = %+v", st)
	}
}

func TestResponderNilInfo(t *testing.T) {
	r := startResponder(t, nil)
	res := Probe(context.Background(), r.Addr(), "", time.Second)
	if res.Err != nil || res.Info.Level != -1 {
		t.Errorf("result = %+v", res)
	}
}

func TestResponderGarbage(t *testing.T) {
	r := startResponder(t, fixedInfo(Info{Node: "n1", Willing: true}, stream))
	c, err := net.Dial("udp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	garbage := [][]byte{
		{},
		[]byte("hello"),
		[]byte("{"),
		[]byte(`[1,2,3]`),
		[]byte(`{"v":2,"type":"probe","seq":1}`),
		[]byte(`{"v":1,"type":"probe_reply","seq":1}`),
		[]byte(`{"v":1,"type":"probe","seq":-1}`),
		[]byte(`{"v":1,"type":"probe","seq":1,"stream":"` + strings.Repeat("x", 3000) + `"}`),
		[]byte(strings.Repeat("x", MaxDatagram+100)),
		{0xff, 0xfe, 0x00, 0x01},
	}
	for _, g := range garbage {
		if _, err := c.Write(g); err != nil {
			t.Fatal(err)
		}
	}
	// A valid request after the garbage is still answered, over the same
	// socket: the responder read (and dropped) everything before it.
	b, _ := json.Marshal(request{V: Version, Type: TypeProbe, Seq: 42, Stream: stream, SentNs: 7})
	if _, err := c.Write(b); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, MaxDatagram)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	var rep reply
	if err := json.Unmarshal(buf[:n], &rep); err != nil {
		t.Fatal(err)
	}
	if rep.V != Version || rep.Type != TypeReply || rep.Seq != 42 || rep.SentNs != 7 || rep.Node != "n1" {
		t.Errorf("reply = %s", buf[:n])
	}
	if st := r.Stats(); st.Garbage != uint64(len(garbage)) || st.Answered != 1 {
		t.Errorf("stats = %+v, want %d garbage, 1 answered", st, len(garbage))
	}
	if res := Probe(context.Background(), r.Addr(), stream, time.Second); res.Err != nil {
		t.Errorf("probe after garbage: %v", res.Err)
	}
}

func TestResponderLifecycle(t *testing.T) {
	r := &Responder{Listen: "127.0.0.1:0"}
	if r.Addr() != "" {
		t.Error("Addr before Start is not empty")
	}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	if err := r.Start(); err == nil {
		t.Error("second Start succeeded")
	}
	r.Close()
	r.Close()
	if err := r.Wait(); err != nil {
		t.Errorf("Wait = %v", err)
	}
	// Closed before started: Start refuses, Close and Wait return.
	r2 := &Responder{Listen: "127.0.0.1:0"}
	r2.Close()
	if err := r2.Start(); err == nil {
		t.Error("Start after Close succeeded")
	}
	if err := r2.Wait(); err != nil {
		t.Error(err)
	}
	// A port in use.
	r3 := &Responder{Listen: r.Addr()}
	r3.Listen = testutil.SilentUDP(t)
	if err := r3.Start(); err == nil {
		r3.Close()
		t.Error("Start on a busy port succeeded")
	}
}

func TestProbeNoAnswer(t *testing.T) {
	addr := testutil.SilentUDP(t)
	res := Probe(context.Background(), addr, stream, 50*time.Millisecond)
	if !errors.Is(res.Err, ErrNoAnswer) {
		t.Errorf("err = %v, want ErrNoAnswer", res.Err)
	}
}

func TestProbeRetransmits(t *testing.T) {
	// A responder that drops the first request answers the second.
	seqs := make(chan uint64, 2)
	addr := fakeResponder(t, func(i int, req request, send func([]byte)) {
		select {
		case seqs <- req.Seq:
		default: // a third request: the test reads two
		}
		if i == 0 {
			return
		}
		b, _ := json.Marshal(reply{V: Version, Type: TypeReply, Seq: req.Seq, SentNs: req.SentNs, Info: Info{Node: "late"}})
		send(b)
	})
	res := Probe(context.Background(), addr, stream, 2*time.Second)
	if res.Err != nil || res.Info.Node != "late" {
		t.Fatalf("result = %+v", res)
	}
	if a, b := <-seqs, <-seqs; b != a+1 {
		t.Errorf("seqs %d, %d: the retransmission should carry the next seq", a, b)
	}
}

func TestProbeIgnoresForgedReply(t *testing.T) {
	// Replies with a seq or sent_ns we did not send are not answers.
	addr := fakeResponder(t, func(_ int, req request, send func([]byte)) {
		for _, r := range []reply{
			{V: Version, Type: TypeReply, Seq: req.Seq + 100, SentNs: req.SentNs, Info: Info{Node: "wrong seq"}},
			{V: Version, Type: TypeReply, Seq: req.Seq, SentNs: req.SentNs + 1, Info: Info{Node: "wrong sent_ns"}},
			{V: Version, Type: TypeProbe, Seq: req.Seq, SentNs: req.SentNs, Info: Info{Node: "wrong type"}},
		} {
			b, _ := json.Marshal(r)
			send(b)
		}
		send([]byte("junk"))
	})
	res := Probe(context.Background(), addr, stream, 100*time.Millisecond)
	if !errors.Is(res.Err, ErrNoAnswer) {
		t.Errorf("result = %+v, want no answer", res)
	}
}

func TestProbeCancelled(t *testing.T) {
	addr := testutil.SilentUDP(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := Probe(ctx, addr, stream, time.Minute)
	if !errors.Is(res.Err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", res.Err)
	}
}

func TestProbeBadAddress(t *testing.T) {
	res := Probe(context.Background(), "no-port", stream, 100*time.Millisecond)
	if res.Err == nil {
		t.Error("probe of an address without a port succeeded")
	}
}

func TestLimiter(t *testing.T) {
	l := newLimiter(10, 3)
	a := netip.MustParseAddr("10.0.0.1")
	b := netip.MustParseAddr("10.0.0.2")
	t0 := time.Unix(1000, 0)
	for i := range 3 {
		if !l.allow(a, t0) {
			t.Fatalf("request %d within the burst refused", i)
		}
	}
	if l.allow(a, t0) {
		t.Error("request beyond the burst allowed")
	}
	if !l.allow(b, t0) {
		t.Error("another source was limited")
	}
	if !l.allow(a, t0.Add(100*time.Millisecond)) {
		t.Error("a token did not come back after 1/rate")
	}
	if l.allow(a, t0.Add(100*time.Millisecond)) {
		t.Error("more than one token came back")
	}
	// Pruning forgets refilled buckets only.
	for i := range limiterPrune {
		l.allow(netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)}), t0)
	}
	l.allow(netip.MustParseAddr("10.9.9.9"), t0.Add(time.Hour))
	if len(l.m) != 1 {
		t.Errorf("%d buckets after pruning, want 1", len(l.m))
	}
	if !newLimiter(-1, 0).allow(a, t0) {
		t.Error("negative rate should disable the limit")
	}
}

func TestResponderRateLimit(t *testing.T) {
	r := &Responder{Listen: "127.0.0.1:0", Rate: 1e-9, Burst: 2, Info: fixedInfo(Info{Node: "n"}, stream)}
	if err := r.Start(); err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := net.Dial("udp", r.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i := range 4 {
		b, _ := json.Marshal(request{V: Version, Type: TypeProbe, Seq: uint64(i)})
		if _, err := c.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	// Wait until the responder has dealt with all four, however slowly.
	deadline := time.Now().Add(10 * time.Second)
	for st := r.Stats(); st.Answered+st.Limited < 4; st = r.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("stats = %+v after 10s", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if st := r.Stats(); st.Answered != 2 || st.Limited != 2 {
		t.Errorf("stats = %+v, want the burst of 2 answered and 2 limited", st)
	}
}

func TestProbeRefused(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	res := Probe(context.Background(), addr, stream, 5*time.Second)
	if res.Err == nil {
		t.Fatal("probe of a closed port succeeded")
	}
	t.Logf("%v -> %q", res.Err, FailureReason(res.Err, time.Second))
}
