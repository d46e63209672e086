package fanout

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ocm-overlay/ocm/internal/testutil/udptest"
)

const bitrate4M = 4_000_000

func allReceived(rs []*udptest.Receiver, n int64) func() bool {
	return func() bool {
		for _, r := range rs {
			if r.Packets.Load() < n {
				return false
			}
		}
		return true
	}
}

func TestHundredOutputsNoLoss(t *testing.T) {
	for _, senders := range []int{1, 3} {
		t.Run(fmt.Sprintf("senders=%d", senders), func(t *testing.T) { testHundredOutputs(t, senders) })
	}
}

func testHundredOutputs(t *testing.T, senders int) {
	const outputs, packets = 100, 700 // 2 s of a 4 Mbit/s stream
	rs, to := newReceivers(t, outputs)
	f := startFanout(t, &Fanout{From: "udp://127.0.0.1:0", To: to, Senders: senders})
	s := udptest.NewRTPSender(t, inputAddr(f), 1400)
	s.SendAtRate(t, packets, bitrate4M)

	udptest.WaitFor(t, "the fanout to send every packet", func() bool {
		st := f.Stats()
		if st.Drops > 0 {
			return true // fail below with the numbers
		}
		for _, o := range st.Out {
			if o.Packets < packets {
				return false
			}
		}
		return true
	})
	udptest.WaitFor(t, "every receiver to get every packet", allReceived(rs, packets))

	st := f.Stats()
	if st.In.Packets != packets || st.In.Gaps != 0 || st.In.Drops != 0 || st.Drops != 0 {
		t.Errorf("input stats %+v, total drops %d; want %d packets, no gaps, no drops", st.In, st.Drops, packets)
	}
	if len(st.Out) != outputs {
		t.Fatalf("%d outputs in stats, want %d", len(st.Out), outputs)
	}
	for i, o := range st.Out {
		if o.Packets != packets || o.Bytes != packets*1400 || o.Drops != 0 || o.Errors != 0 {
			t.Errorf("output %d: %+v", i, o)
		}
		if got := rs[i].Packets.Load(); got != packets {
			t.Errorf("receiver %d got %d packets, want %d", i, got, packets)
		}
	}
}

func TestAddRemoveAtRunTime(t *testing.T) {
	a, b := udptest.NewReceiver(t), udptest.NewReceiver(t)
	f := startFanout(t, &Fanout{From: "udp://127.0.0.1:0", To: []string{a.URL()}})
	s := udptest.NewRTPSender(t, inputAddr(f), 200)
	handle := func(line string) Reply {
		t.Helper()
		r := f.Handle([]byte(line))
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("reply does not encode: %v", err)
		}
		return r
	}

	s.Send(t, 50)
	udptest.WaitFor(t, "a to get phase 1", allReceived([]*udptest.Receiver{a}, 50))

	r := handle(`{"op":"add","to":"` + b.URL() + `","id":7}`)
	if !r.OK || r.To != b.URL() || string(r.ID) != "7" {
		t.Fatalf("add: %+v", r)
	}
	for _, bad := range []string{
		`{"op":"add","to":"` + b.URL() + `"}`, // already there
		`{"op":"add","to":"udp://nohost"}`,
		`{"op":"add","to":"tcp://127.0.0.1:5"}`,
		`{"op":"add"}`,
		`{"op":"remove","to":"udp://127.0.0.1:9"}`, // not there
		`{"op":"frobnicate"}`,
		`{"op":"add","to":"udp://127.0.0.1:5","extra":1}`,
		`{"op":"list"} {"op":"list"}`,
		`not json`,
		``,
	} {
		if r := handle(bad); r.OK || r.Error == "" {
			t.Errorf("%s: want an error reply, got %+v", bad, r)
		}
	}
	if r := handle(`{"op":"list"}`); !r.OK || fmt.Sprint(r.To) != fmt.Sprint([]string{a.URL(), b.URL()}) {
		t.Fatalf("list: %+v", r)
	}

	s.Send(t, 30)
	udptest.WaitFor(t, "a and b to get phase 2", func() bool { return a.Packets.Load() >= 80 && b.Packets.Load() >= 30 })

	if r := handle(`{"op":"remove","to":"` + a.URL() + `"}`); !r.OK {
		t.Fatalf("remove: %+v", r)
	}
	s.Send(t, 20)
	udptest.WaitFor(t, "b to get phase 3", func() bool { return b.Packets.Load() >= 50 })

	if r := handle(`{"op":"stats"}`); !r.OK || r.Stats == nil || r.Stats.In.Packets != 100 || len(r.Stats.Out) != 1 {
		t.Fatalf("stats: %+v", r)
	}
	if got := a.Packets.Load(); got != 80 {
		t.Errorf("removed output got %d packets, want 80", got)
	}
	if got := b.Packets.Load(); got != 50 {
		t.Errorf("added output got %d packets, want 50", got)
	}
	if st := f.Stats(); st.In.Gaps != 0 || st.Drops != 0 {
		t.Errorf("stats after bad commands: %+v", st)
	}
}

// A destination nobody listens on answers every packet with ICMP port
// unreachable; the sending sockets are unconnected, so that costs the
// others nothing, not even an error to handle.
func TestDeadDestinationDoesNotDisturbOthers(t *testing.T) {
	const live, packets = 20, 350
	dead := deadPort(t)
	to := []string{"udp://" + dead.String()}
	rs, urls := newReceivers(t, live)
	to = append(to, urls...)
	f := startFanout(t, &Fanout{From: "udp://127.0.0.1:0?rtcp=0", To: to})
	s := udptest.NewRTPSender(t, inputAddr(f), 1400)
	s.SendAtRate(t, packets, bitrate4M)
	udptest.WaitFor(t, "every live receiver to get every packet", allReceived(rs, packets))

	st := f.Stats()
	if st.In.Packets != packets || st.In.Drops != 0 {
		t.Errorf("input: %+v", st.In)
	}
	for i, o := range st.Out {
		// Sending to the dead one succeeds as far as this host can tell.
		if o.Packets != packets || o.Drops != 0 || o.Errors != 0 {
			t.Errorf("output %d: %+v", i, o)
		}
	}
}

func TestFailingDestinationDoesNotDisturbOthers(t *testing.T) {
	const packets = 300
	bad := deadPort(t)
	rs := []*udptest.Receiver{udptest.NewReceiver(t), udptest.NewReceiver(t), udptest.NewReceiver(t)}
	to := []string{rs[0].URL(), "udp://" + bad.String(), rs[1].URL(), rs[2].URL()}
	var fake *fakeSocket
	f := &Fanout{From: "udp://127.0.0.1:0?rtcp=0", To: to, Senders: 1}
	f.wrapWriter = func(w batchWriter) batchWriter {
		fake = &fakeSocket{w: w, failAddr: bad}
		return fake
	}
	startFanout(t, f)
	s := udptest.NewRTPSender(t, inputAddr(f), 200)
	s.SendPaced(t, packets, 10)
	waitStats(t, f, rs, "the good receivers to get every packet", allReceived(rs, packets))
	waitStats(t, f, rs, "every send to the bad one to fail", func() bool { return f.Stats().Out[1].Errors == packets })

	st := f.Stats()
	if b := st.Out[1]; b.Packets != 0 || b.Drops != packets || !strings.Contains(b.LastError, "not permitted") {
		t.Errorf("failing output: %+v", b)
	}
	for _, i := range []int{0, 2, 3} {
		if o := st.Out[i]; o.Packets != packets || o.Drops != 0 || o.Errors != 0 {
			t.Errorf("output %d: %+v", i, o)
		}
	}
}

// A full socket is never waited on: the input goes on, the queues keep
// the newest packets and drop the oldest, and sending resumes once the
// socket drains.
func TestFullSocketDoesNotBlock(t *testing.T) {
	const queue, during, after = 64, 200, 50
	rs := []*udptest.Receiver{udptest.NewReceiver(t), udptest.NewReceiver(t)}
	var fake *fakeSocket
	f := &Fanout{From: "udp://127.0.0.1:0?rtcp=0", To: []string{rs[0].URL(), rs[1].URL()}, QueueLen: queue, Senders: 1}
	f.wrapWriter = func(w batchWriter) batchWriter {
		fake = &fakeSocket{w: w}
		fake.full.Store(true)
		return fake
	}
	startFanout(t, f)
	s := udptest.NewRTPSender(t, inputAddr(f), 200)
	s.SendPaced(t, during, 10)
	waitStats(t, f, rs, "the input to take every packet", func() bool { return f.Stats().In.Packets == during })
	waitStats(t, f, rs, "full queues", func() bool {
		for _, o := range f.Stats().Out {
			if o.Queued != queue || o.Drops != during-queue {
				return false
			}
		}
		return true
	})
	if rs[0].Packets.Load() != 0 || fake.calls.Load() == 0 {
		t.Fatalf("sent %d packets through a full socket, tried %d times", rs[0].Packets.Load(), fake.calls.Load())
	}

	fake.full.Store(false)
	waitStats(t, f, rs, "the queued packets", allReceived(rs, queue))
	s.Send(t, after)
	waitStats(t, f, rs, "the packets sent after", allReceived(rs, queue+after))
	st := f.Stats()
	if st.In.Drops != 0 || st.In.Gaps != 0 {
		t.Errorf("input: %+v", st.In)
	}
	for i, o := range st.Out {
		if o.Packets != queue+after || o.Drops != during-queue {
			t.Errorf("output %d: %+v", i, o)
		}
	}
	// The pool holds what the queues need, not every packet sent.
	if n := f.pool.allocated.Load(); n > 3*DefaultBatchSize {
		t.Errorf("%d buffers allocated for %d packets", n, during+after)
	}
}

func TestRTCPFollowsOnPortPlusOne(t *testing.T) {
	rtp, rtcp := receiverPair(t)
	f := startFanout(t, &Fanout{From: "udp://127.0.0.1:0", To: []string{rtp.URL()}})
	s := udptest.NewRTPSender(t, inputAddr(f), 300)
	s.Send(t, 10)
	in := inputAddr(f)
	rtcpIn := udptest.NewRTPSender(t, in, 28)
	rtcpIn.To = netip.AddrPortFrom(in.Addr(), in.Port()+1)
	rtcpIn.Buf[1] = 200 // sender report
	rtcpIn.Send(t, 2)
	udptest.WaitFor(t, "RTP and RTCP", func() bool { return rtp.Packets.Load() == 10 && rtcp.Packets.Load() == 2 })
	st := f.Stats()
	if st.In.Packets != 10 || st.In.RTCPPackets != 2 || st.Out[0].Packets != 12 {
		t.Errorf("stats: %+v", st)
	}
	if !strings.HasPrefix(f.Addr(), "udp://127.0.0.1:") {
		t.Errorf("Addr() = %q", f.Addr())
	}
}

func TestSequenceGapsCounted(t *testing.T) {
	r := udptest.NewReceiver(t)
	f := startFanout(t, &Fanout{From: "udp://127.0.0.1:0", To: []string{r.URL()}})
	s := udptest.NewRTPSender(t, inputAddr(f), 100)
	s.Send(t, 5)
	s.Seq += 3 // lose 3
	s.Send(t, 5)
	s.Seq += 1 // lose 1
	s.Send(t, 1)
	udptest.WaitFor(t, "11 packets", allReceived([]*udptest.Receiver{r}, 11))
	if st := f.Stats(); st.In.Gaps != 2 || st.In.Lost != 4 {
		t.Errorf("gaps %d lost %d, want 2 and 4", st.In.Gaps, st.In.Lost)
	}
}

func TestSDPWrittenOnFirstPacket(t *testing.T) {
	r := udptest.NewReceiver(t)
	path := filepath.Join(t.TempDir(), "out.sdp")
	var called atomic.Int32
	f := startFanout(t, &Fanout{
		From:    "udp://127.0.0.1:0",
		To:      []string{r.URL()},
		SDPFile: path,
		SDPTo:   "udp://239.255.42.42:5004", // described only, not sent to
		OnSDP:   func(string) { called.Add(1) },
	})
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("sdp written before the first packet: %v", err)
	}
	s := udptest.NewRTPSender(t, inputAddr(f), 100)
	s.Send(t, 3)
	udptest.WaitFor(t, "the sdp", func() bool { return called.Load() > 0 })
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"c=IN IP4 239.255.42.42/1\r\n", "m=video 5004 RTP/AVP 96\r\n", "a=rtpmap:96 H264/90000\r\n"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("sdp lacks %q:\n%s", want, b)
		}
	}
	if called.Load() != 1 {
		t.Errorf("OnSDP called %d times", called.Load())
	}
}

func TestStartErrors(t *testing.T) {
	busy, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.LocalAddr().(*net.UDPAddr).Port
	r := udptest.NewReceiver(t)
	refused := deadPort(t)

	cases := []struct {
		name string
		f    *Fanout
		want string
	}{
		{"bad from", &Fanout{From: "udp://127.0.0.1", To: []string{r.URL()}}, "--from"},
		{"bad scheme", &Fanout{From: "http://x/y"}, "scheme"},
		{"bad to", &Fanout{From: "udp://127.0.0.1:0", To: []string{"udp://127.0.0.1:0"}}, "--to"},
		{"port in use", &Fanout{From: fmt.Sprintf("udp://127.0.0.1:%d?rtcp=0", busyPort)}, "address already in use"},
		{"rtcp port in use", &Fanout{From: fmt.Sprintf("udp://127.0.0.1:%d", busyPort-1)}, "in use"},
		{"no such iface", &Fanout{From: "udp://127.0.0.1:0", Iface: "nosuchif0"}, "nosuchif0"},
		{"not a group", &Fanout{From: "udp://10.0.0.1@0.0.0.0:0"}, "not a multicast group"},
		{"sdp without output", &Fanout{From: "udp://127.0.0.1:0", SDPFile: "x.sdp"}, "--to"},
		{"too many outputs", &Fanout{From: "udp://127.0.0.1:0", To: []string{r.URL(), "udp://127.1.0.1:5004"}, MaxDestinations: 1}, "too many destinations"},
		{"rtsp refused", &Fanout{From: "rtsp://" + refused.String() + "/live", RTSPTransport: "tcp"}, "refused"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.f.Start()
			if err == nil {
				c.f.Close()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q lacks %q", err, c.want)
			}
			c.f.Close() // harmless after a failed Start
			c.f.Close()
		})
	}
}

func TestCloseIsIdempotentAndWaitReturns(t *testing.T) {
	f := &Fanout{From: "udp://127.0.0.1:0", To: []string{udptest.NewReceiver(t).URL()}}
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	f.Close()
	if err := f.Wait(); err != nil {
		t.Errorf("Wait after Close: %v", err)
	}
	if _, err := f.Add(udptest.NewReceiver(t).URL()); !errors.Is(err, ErrClosed) {
		t.Errorf("Add after Close: %v", err)
	}
}

// TestNoAllocationPerPacket runs packets through input, queues and
// senders and counts heap allocations in the whole process.
func TestNoAllocationPerPacket(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	const outputs, warm, packets = 10, 2000, 5000
	rs, to := newReceivers(t, outputs)
	f := startFanout(t, &Fanout{From: "udp://127.0.0.1:0", To: to})
	s := udptest.NewRTPSender(t, inputAddr(f), 1200)
	burst := func(n int) {
		s.SendPaced(t, n, 20)
	}
	// Whatever a busy machine drops, every packet is accounted for once
	// the input has them all and the queues are empty.
	settled := func(total uint64) func() bool {
		return func() bool {
			st := f.Stats()
			if st.In.Packets != total {
				return false
			}
			for _, o := range st.Out {
				if o.Packets+o.Drops != total {
					return false
				}
			}
			return true
		}
	}
	burst(warm)
	waitStats(t, f, rs, "warm-up", settled(warm))
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	burst(packets)
	waitStats(t, f, rs, "delivery", settled(warm+packets))
	runtime.ReadMemStats(&after)
	allocs := after.Mallocs - before.Mallocs
	t.Logf("%d allocations for %d packets to %d outputs", allocs, packets, outputs)
	if per := float64(allocs) / packets; per > 0.05 {
		t.Errorf("%.3f allocations per input packet", per)
	}
}

// An input SDP that appears after Start (ffmpeg -sdp_file started after
// the fanout) is read at the first packet, its formats kept.
func TestInputSDPReadAtFirstPacket(t *testing.T) {
	r := udptest.NewReceiver(t)
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.sdp"), filepath.Join(dir, "out.sdp")
	var called atomic.Int32
	f := startFanout(t, &Fanout{
		From:     "udp://127.0.0.1:0",
		To:       []string{r.URL()},
		SDPFile:  out,
		InputSDP: in,
		OnSDP:    func(string) { called.Add(1) },
	})
	sdp := "v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=No Name\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=video 5004 RTP/AVP 97\r\na=rtpmap:97 H265/90000\r\na=fmtp:97 sprop-vps=QAEMAf//\r\n"
	if err := os.WriteFile(in, []byte(sdp), 0o644); err != nil {
		t.Fatal(err)
	}
	udptest.NewRTPSender(t, inputAddr(f), 100).Send(t, 1)
	udptest.WaitFor(t, "the sdp", func() bool { return called.Load() > 0 })
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want := "m=video " + strconv.Itoa(int(r.Addr.Port())) + " RTP/AVP 97\r\na=rtpmap:97 H265/90000\r\na=fmtp:97 sprop-vps=QAEMAf//\r\n"
	if !strings.Contains(string(b), want) {
		t.Errorf("sdp lacks %q:\n%s", want, b)
	}
}
