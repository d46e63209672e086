package main

// The fanout case: packets per second that rtp-fanout delivers to 100
// local UDP destinations, and its CPU per packet, against a floor measured
// in the same run: one thread writing the same packets to the same
// destinations with sendmmsg and nothing else.

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/lab"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

func init() { register("fanout", runFanoutBench) }

const (
	fanoutDests      = 100
	fanoutPacketSize = 1400 // bytes of RTP, as in a 4 Mbit/s video stream
	fanoutTarget     = 0.70 // fraction of the floor's packet rate to reach
	fanoutOverload   = 1.25 // offered load relative to the floor, to saturate the fanout
)

func runFanoutBench(ctx context.Context, o options) ([]result, error) {
	bin := filepath.Join(o.Bin, "rtp-fanout")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("%w (run make build)", err)
	}
	rx, err := newFanoutReceivers(fanoutDests)
	if err != nil {
		return nil, err
	}
	defer rx.close()

	floor, err := fanoutFloor(ctx, rx, 0, o.Duration)
	if err != nil {
		return nil, fmt.Errorf("floor: %w", err)
	}
	offered := fanoutOverload * floor.sentPPS / fanoutDests
	sat, err := fanoutRun(ctx, o.Lab, bin, rx, offered, o.Duration)
	if err != nil {
		return nil, fmt.Errorf("fanout at saturation: %w", err)
	}
	live := float64(4_000_000) / 8 / fanoutPacketSize
	live4, err := fanoutRun(ctx, o.Lab, bin, rx, live, o.Duration)
	if err != nil {
		return nil, fmt.Errorf("fanout at 4 Mbit/s: %w", err)
	}
	liveFloor, err := fanoutFloor(ctx, rx, live, o.Duration)
	if err != nil {
		return nil, fmt.Errorf("floor at 4 Mbit/s: %w", err)
	}

	ratio := sat.deliveredPPS / floor.deliveredPPS
	r := result{
		Case: "fanout",
		Metrics: map[string]any{
			"destinations":                         fanoutDests,
			"packet_bytes":                         fanoutPacketSize,
			"floor_delivered_pps":                  fanoutRound(floor.deliveredPPS),
			"floor_sent_pps":                       fanoutRound(floor.sentPPS),
			"floor_cpu_ns_per_packet":              fanoutRound(floor.cpuPerPacket),
			"fanout_offered_input_pps":             fanoutRound(offered),
			"fanout_input_pps":                     fanoutRound(sat.inputPPS),
			"fanout_delivered_pps":                 fanoutRound(sat.deliveredPPS),
			"fanout_sent_pps":                      fanoutRound(sat.sentPPS),
			"fanout_drops_pps":                     fanoutRound(sat.dropsPPS),
			"fanout_cpu_ns_per_packet":             fanoutRound(sat.cpuPerPacket),
			"ratio_pps_vs_floor":                   fanoutRound2(ratio),
			"ratio_cpu_floor_vs_fanout":            fanoutRound2(floor.cpuPerPacket / sat.cpuPerPacket),
			"target_ratio":                         fanoutTarget,
			"target_met":                           ratio >= fanoutTarget,
			"live_4mbps_input_pps":                 fanoutRound(live),
			"live_4mbps_delivered_pps":             fanoutRound(live4.deliveredPPS),
			"live_4mbps_loss_fraction":             fanoutRound4(max(0, 1-live4.deliveredPPS/live4.sentPPS)),
			"live_4mbps_cpu_percent_of_core":       fanoutRound2(live4.cpuBusy * 100),
			"live_4mbps_cpu_ns_per_packet":         fanoutRound(live4.cpuPerPacket),
			"live_4mbps_floor_cpu_percent":         fanoutRound2(liveFloor.cpuBusy * 100),
			"live_4mbps_floor_cpu_ns_per_packet":   fanoutRound(liveFloor.cpuPerPacket),
			"live_4mbps_ratio_cpu_floor_vs_fanout": fanoutRound2(liveFloor.cpuPerPacket / live4.cpuPerPacket),
			"load_average_1m":                      lab.LoadAverage(),
		},
		Notes: []string{
			"floor: one thread, one unconnected socket, one sendmmsg of the packet to all 100 destinations per packet, run flat out",
			fmt.Sprintf("fanout: the rtp-fanout process fed %.0f%% of the floor's rate over UDP; its CPU (all threads) from /proc/PID/stat", fanoutOverload*100),
			"delivered: counted by 100 receiving sockets in this process (recvmmsg, shared by both runs); cpu per packet is per packet sent",
			"live_4mbps: a 4 Mbit/s stream of 1400-byte packets to the same 100 destinations, from the fanout and from the floor loop paced alike",
		},
	}
	if !r.Metrics["target_met"].(bool) {
		r.Notes = append(r.Notes, fmt.Sprintf("below target: %.2f of the floor's packet rate", ratio))
	}
	return []result{r}, nil
}

func fanoutRound(f float64) float64  { return float64(int64(f + 0.5)) }
func fanoutRound2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }
func fanoutRound4(f float64) float64 { return float64(int64(f*10000+0.5)) / 10000 }

// fanoutMeasure is one measured window.
type fanoutMeasure struct {
	inputPPS, sentPPS, deliveredPPS, dropsPPS float64
	cpuPerPacket                              float64 // ns of CPU per packet sent
	cpuBusy                                   float64 // CPU seconds per second
}

// fanoutPacket is an RTP packet of the bench's size; seq is set per send.
func fanoutPacket() []byte {
	b := make([]byte, fanoutPacketSize)
	b[0], b[1] = 0x80, 96
	binary.BigEndian.PutUint32(b[8:], 0xbe0c4)
	return b
}

// fanoutFloor writes each packet to every destination, one sendmmsg per
// packet, from one locked thread, for d; its CPU is the thread's. pps 0
// runs flat out, else packets are sent at that rate, due ones each
// millisecond, as the fanout's feeder does.
func fanoutFloor(ctx context.Context, rx *fanoutReceivers, pps float64, d time.Duration) (fanoutMeasure, error) {
	type out struct {
		m   fanoutMeasure
		err error
	}
	done := make(chan out, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			done <- out{err: err}
			return
		}
		defer c.Close()
		_ = c.SetWriteBuffer(4 << 20)
		pc := ipv4.NewPacketConn(c)
		pkt := fanoutPacket()
		msgs := make([]ipv4.Message, len(rx.addrs))
		for i, a := range rx.addrs {
			msgs[i] = ipv4.Message{Buffers: [][]byte{pkt}, Addr: net.UDPAddrFromAddrPort(a)}
		}
		var seq uint16
		send := func(until time.Time) (uint64, error) {
			var sent, pkts uint64
			start := time.Now()
			for ; time.Now().Before(until) && ctx.Err() == nil; seq++ {
				if pps > 0 {
					for float64(pkts) >= pps*time.Since(start).Seconds() {
						time.Sleep(time.Millisecond)
					}
					pkts++
				}
				binary.BigEndian.PutUint16(pkt[2:], seq)
				for m := msgs; len(m) > 0; {
					n, err := pc.WriteBatch(m, 0)
					if err != nil && !errors.Is(err, syscall.ENOBUFS) && !errors.Is(err, syscall.EAGAIN) {
						return sent, err
					}
					n = max(n, 0)
					sent += uint64(n)
					m = m[n:]
				}
			}
			return sent, nil
		}
		if _, err := send(time.Now().Add(time.Second)); err != nil { // warm-up
			done <- out{err: err}
			return
		}
		rx0, cpu0, t0 := rx.total(), fanoutThreadCPU(), time.Now()
		sent, err := send(t0.Add(d))
		el, cpu := time.Since(t0).Seconds(), fanoutThreadCPU()-cpu0
		time.Sleep(100 * time.Millisecond) // let the receivers drain
		rx1 := rx.total()
		if err != nil {
			done <- out{err: err}
			return
		}
		done <- out{m: fanoutMeasure{
			sentPPS:      float64(sent) / el,
			deliveredPPS: float64(rx1-rx0) / el,
			cpuPerPacket: float64(cpu.Nanoseconds()) / float64(sent),
			cpuBusy:      cpu.Seconds() / el,
		}}
	}()
	r := <-done
	return r.m, r.err
}

func fanoutThreadCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_THREAD, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fanoutRun starts rtp-fanout to the receivers, feeds it inputPPS for a
// warm-up second and then d, and measures the window.
func fanoutRun(ctx context.Context, c lab.Cleaner, bin string, rx *fanoutReceivers, inputPPS float64, d time.Duration) (fanoutMeasure, error) {
	args := []string{"--from", "udp://127.0.0.1:0?rtcp=0", "--stats-interval", "0"}
	for _, a := range rx.addrs {
		args = append(args, "--to", "udp://"+a.String())
	}
	p, err := startFanoutProc(c, bin, args)
	if err != nil {
		return fanoutMeasure{}, err
	}
	defer p.Stop()
	ready, err := lab.Ready[event.FanoutReady](ctx, p, lab.Patience)
	if err != nil {
		return fanoutMeasure{}, err
	}
	from := ready.From
	u, err := url.Parse(from)
	if err != nil {
		return fanoutMeasure{}, fmt.Errorf("ready line: from %q: %w", from, err)
	}
	in, err := netip.ParseAddrPort(u.Host)
	if err != nil {
		return fanoutMeasure{}, fmt.Errorf("ready line: from %q: %w", from, err)
	}

	feedCtx, stopFeed := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var feedErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		feedErr = fanoutFeed(feedCtx, in, inputPPS)
	}()
	defer func() { stopFeed(); wg.Wait() }()

	select {
	case <-time.After(time.Second): // warm-up
	case <-ctx.Done():
		return fanoutMeasure{}, ctx.Err()
	}
	s0, err := p.stats(ctx)
	if err != nil {
		return fanoutMeasure{}, err
	}
	rx0, cpu0, t0 := rx.total(), p.cpu(), time.Now()
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return fanoutMeasure{}, ctx.Err()
	}
	s1, err := p.stats(ctx)
	if err != nil {
		return fanoutMeasure{}, err
	}
	rx1, cpu1, el := rx.total(), p.cpu(), time.Since(t0).Seconds()
	stopFeed()
	wg.Wait()
	if feedErr != nil {
		return fanoutMeasure{}, fmt.Errorf("feeding the input: %w", feedErr)
	}
	sent := s1.sent - s0.sent
	cpu := (cpu1 - cpu0).Seconds()
	m := fanoutMeasure{
		inputPPS:     float64(s1.in-s0.in) / el,
		sentPPS:      float64(sent) / el,
		deliveredPPS: float64(rx1-rx0) / el,
		dropsPPS:     float64(s1.drops-s0.drops) / el,
		cpuBusy:      cpu / el,
	}
	if sent > 0 {
		m.cpuPerPacket = cpu * 1e9 / float64(sent)
	}
	return m, nil
}

// fanoutFeed sends RTP to the fanout's input at pps, in a burst per
// millisecond.
func fanoutFeed(ctx context.Context, to netip.AddrPort, pps float64) error {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(to))
	if err != nil {
		return err
	}
	defer c.Close()
	pc := ipv4.NewPacketConn(c)
	pkts := make([][]byte, 256)
	msgs := make([]ipv4.Message, len(pkts))
	for i := range pkts {
		pkts[i] = fanoutPacket()
		msgs[i].Buffers = [][]byte{pkts[i]}
	}
	var seq uint16
	var sent float64
	start := time.Now()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		due := int(pps*time.Since(start).Seconds() - sent)
		for due > 0 {
			k := min(due, len(msgs))
			for i := range k {
				binary.BigEndian.PutUint16(pkts[i][2:], seq)
				seq++
			}
			n, err := pc.WriteBatch(msgs[:k], 0)
			if err != nil && !errors.Is(err, syscall.ECONNREFUSED) && !errors.Is(err, syscall.ENOBUFS) {
				return err
			}
			n = max(n, 1) // a refused or dropped packet counts as offered
			sent += float64(n)
			due -= n
		}
	}
}

// fanoutProc is a running rtp-fanout, asked for its counters over stdin.
type fanoutProc struct {
	*lab.Proc
	replies int // stdout lines already read for replies
}

func startFanoutProc(c lab.Cleaner, bin string, args []string) (*fanoutProc, error) {
	p, err := lab.StartWith(c, lab.Options{Stdin: true, StopLimit: 10 * time.Second}, "rtp-fanout", bin, args...)
	if err != nil {
		return nil, err
	}
	return &fanoutProc{Proc: p}, nil
}

type fanoutCounts struct{ in, sent, drops uint64 }

// stats asks the process for its counters over its stdin.
func (p *fanoutProc) stats(ctx context.Context) (fanoutCounts, error) {
	if err := p.Send(`{"op":"stats"}`); err != nil {
		return fanoutCounts{}, err
	}
	rep, err := lab.Await[event.Reply](ctx, p, 30*time.Second, p.replies, nil)
	if err != nil {
		return fanoutCounts{}, fmt.Errorf("no reply from rtp-fanout: %w\n%s", err, p.StderrTail())
	}
	p.replies = rep.Index + 1
	s := rep.E.Stats
	if s == nil {
		return fanoutCounts{}, fmt.Errorf("rtp-fanout stats reply without stats: %+v", rep.E)
	}
	c := fanoutCounts{in: s.In.Packets, drops: s.Drops}
	for _, o := range s.Out {
		c.sent += o.Packets
	}
	return c, nil
}

// cpu is the process's user+system time, all threads.
func (p *fanoutProc) cpu() time.Duration {
	d, _ := p.CPUTime()
	return d
}

// fanoutReceivers are the 100 destinations: sockets drained by one
// goroutine with non-blocking recvmmsg, truncating each packet to a few
// bytes, so counting costs little next to sending.
type fanoutReceivers struct {
	conns []*net.UDPConn
	raws  []syscall.RawConn
	addrs []netip.AddrPort
	count atomic.Uint64
	stopC chan struct{}
	done  chan struct{}
}

func newFanoutReceivers(n int) (*fanoutReceivers, error) {
	rx := &fanoutReceivers{stopC: make(chan struct{}), done: make(chan struct{})}
	for range n {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			rx.closeConns()
			return nil, err
		}
		_ = c.SetReadBuffer(4 << 20)
		raw, err := c.SyscallConn()
		if err != nil {
			c.Close()
			rx.closeConns()
			return nil, err
		}
		rx.conns = append(rx.conns, c)
		rx.raws = append(rx.raws, raw)
		rx.addrs = append(rx.addrs, c.LocalAddr().(*net.UDPAddr).AddrPort())
	}
	go rx.drain()
	return rx, nil
}

// fanoutMmsghdr is struct mmsghdr on 64-bit Linux.
type fanoutMmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [unsafe.Sizeof(uintptr(0)) - 4]byte
}

func (rx *fanoutReceivers) drain() {
	defer close(rx.done)
	const batch = 256
	hs := make([]fanoutMmsghdr, batch)
	iovs := make([]unix.Iovec, batch)
	buf := make([]byte, 16*batch)
	for i := range hs {
		iovs[i].Base = &buf[16*i]
		iovs[i].SetLen(16)
		hs[i].hdr.Iov = &iovs[i]
		hs[i].hdr.SetIovlen(1)
	}
	var got int
	read := func(fd uintptr) bool {
		for {
			n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&hs[0])), batch, unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
			if e != 0 || n == 0 {
				return true
			}
			got += int(n)
			if n < batch {
				return true
			}
		}
	}
	for {
		got = 0
		for _, raw := range rx.raws {
			_ = raw.Read(read)
		}
		rx.count.Add(uint64(got))
		wait := 500 * time.Microsecond
		if got >= 64 {
			wait = 0 // busy: sweep again at once
		}
		select {
		case <-rx.stopC:
			return
		case <-time.After(wait):
		}
	}
}

func (rx *fanoutReceivers) total() uint64 { return rx.count.Load() }

func (rx *fanoutReceivers) closeConns() {
	for _, c := range rx.conns {
		c.Close()
	}
}

func (rx *fanoutReceivers) close() {
	close(rx.stopC)
	<-rx.done
	rx.closeConns()
}
