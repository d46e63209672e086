// Package fanout relays one RTP input (a UDP port or multicast group, or an
// RTSP URL) to many unicast and multicast UDP destinations. Each
// destination has a bounded queue that drops its oldest packets when it
// falls behind, and senders batch packets for many destinations into one
// sendmmsg that never waits, so the cost per packet stays near the
// kernel's and no destination delays the input or the others.
package fanout

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocm-overlay/ocm/internal/defaults"
)

// Defaults for Fanout's zero-valued fields, in one place.
const (
	// DefaultQueueLen is the per-destination queue, in packets: about 1.4 s
	// of a 4 Mbit/s stream of 1400-byte packets.
	DefaultQueueLen = 512
	// DefaultBatchSize is the number of packets per sendmmsg and recvmmsg.
	DefaultBatchSize = 64
	// DefaultMaxPacketSize is the buffer per packet: an Ethernet MTU with
	// room to spare; larger datagrams are counted as truncated and dropped.
	DefaultMaxPacketSize = 2048
	// DefaultMaxPackets bounds the buffers in flight across all
	// destinations (32 MiB at the default packet size); the pool grows to
	// its working set and then stops allocating.
	DefaultMaxPackets = 16384
	// DefaultSenders is the number of senders sharing the outputs. The
	// first one sends on the input's own goroutine, so at the default of
	// one a packet goes in and out without a goroutine switch: the
	// cheapest per packet (about 400k packets/s on one core of a small
	// VM). More spread very high rates over cores, at some cost in
	// wake-ups per packet.
	DefaultSenders = 1
	// DefaultReadBuffer is the input sockets' SO_RCVBUF (capped by the
	// kernel's net.core.rmem_max).
	DefaultReadBuffer = 4 << 20
	// DefaultMaxDestinations bounds the outputs held at once: each costs
	// a queue and counters (about 10 KB), and every input packet is
	// handed to each.
	DefaultMaxDestinations = 1024
	// DefaultRTPMap names the codec of a dynamic payload type on a plain
	// UDP input with no InputSDP, for the SDP written to SDPFile.
	DefaultRTPMap = "H264/90000"
)

// Sentinel errors callers can test with errors.Is.
var (
	ErrExists   = errors.New("destination already present")
	ErrNotFound = errors.New("destination not found")
	ErrClosed   = errors.New("fanout closed")
	ErrTooMany  = errors.New("too many destinations")
)

// Fanout relays one input to many outputs. Set the exported fields, call
// Start, then Close when done; Wait returns when the input ends.
type Fanout struct {
	From  string   // input URL: udp://[GROUP@]HOST:PORT or rtsp://...
	To    []string // initial outputs: udp://HOST:PORT[?ttl=N]
	Iface string   // interface for joining the input group and sending to groups
	// LookupHost resolves the host names of From and of outputs (nil: the
	// system's resolver, SystemLookup).
	LookupHost LookupFunc

	SDPFile  string // if set, an SDP describing SDPTo is written here
	SDPTo    string // the output the SDP describes; default: the first multicast To, else the first To
	InputSDP string // SDP describing a udp input (e.g. from ffmpeg -sdp_file), copied into SDPFile
	RTPMap   string // codec of a dynamic payload type when no SDP is known (DefaultRTPMap)

	RTSPTransport string // rtsp input: "udp", "tcp", "multicast", or "" to let the client choose
	// RTSPReconnect is how long an rtsp input that was lost (the server
	// closed, restarted or stopped sending) is retried, with backoff,
	// before Wait returns the error; 0 ends at once. The outputs keep
	// their sockets and counters meanwhile.
	RTSPReconnect time.Duration

	QueueLen      int // per destination, packets (DefaultQueueLen)
	BatchSize     int // packets per system call (DefaultBatchSize)
	MaxPacketSize int // bytes (DefaultMaxPacketSize)
	MaxPackets    int // buffers in flight (DefaultMaxPackets)
	ReadBuffer    int // input SO_RCVBUF (DefaultReadBuffer)
	Senders       int // senders sharing the outputs (DefaultSenders)
	// MaxDestinations bounds the outputs held at once
	// (DefaultMaxDestinations); an add beyond it fails with ErrTooMany.
	MaxDestinations int

	Log *slog.Logger
	// OnSDP, if set, is called once the SDP file has been written (for a
	// udp input without InputSDP, on the first RTP packet).
	OnSDP func(path string)

	in       Input
	ifi      *net.Interface
	src      source
	pool     *pool
	channels int
	gaps     []*SeqGap // one per input media
	inStats  inCounters
	// removedDrops keeps the drops of removed outputs in the total.
	removedDrops atomic.Uint64

	sdpOut  Output
	sdpDone atomic.Bool

	senders []*sender
	mu      sync.Mutex              // serialises changes to dests
	dests   atomic.Pointer[[]*dest] // every output, in the order added
	closed  bool                    // under mu

	// wrapWriter, set by tests, wraps the writer of each sending socket.
	wrapWriter func(batchWriter) batchWriter

	closeOnce sync.Once
	done      chan struct{}
	err       error
}

// source is an input: a UDP socket pair or an RTSP session.
type source interface {
	addr() string
	run() error // until close (nil) or a failure
	close()
}

// Start fills defaults, opens the input and the initial outputs and starts
// relaying. On error nothing is left open.
func (f *Fanout) Start() (err error) {
	f.defaults()
	f.done = make(chan struct{})
	empty := []*dest{}
	f.dests.Store(&empty)

	if f.in, err = parseInput(f.From, f.LookupHost); err != nil {
		return fmt.Errorf("--from: %w", err)
	}
	outs := make([]Output, 0, len(f.To))
	for _, s := range f.To {
		o, err := parseOutput(s, f.LookupHost)
		if err != nil {
			return fmt.Errorf("--to: %w", err)
		}
		outs = append(outs, o)
	}
	if f.Iface != "" {
		if f.ifi, err = net.InterfaceByName(f.Iface); err != nil {
			return fmt.Errorf("--iface %q: %w", f.Iface, err)
		}
	}
	if f.SDPFile != "" {
		if f.sdpOut, err = f.pickSDPOutput(outs); err != nil {
			return err
		}
	}
	f.pool = newPool(f.MaxPacketSize, f.MaxPackets)

	var play func() error
	switch f.in.Scheme {
	case "udp":
		s, err := openUDP(f)
		if err != nil {
			return err
		}
		f.src = s
		f.channels = 1
		if f.in.RTCP {
			f.channels = 2
		}
		f.gaps = []*SeqGap{{}}
	case "rtsp":
		s, err := openRTSP(f)
		if err != nil {
			return err
		}
		f.src, play = s, s.play
		f.channels = 2 * len(s.medias)
		f.gaps = make([]*SeqGap, len(s.medias))
		for i := range f.gaps {
			f.gaps[i] = &SeqGap{}
		}
	}
	for range f.Senders {
		s := newSender(f.BatchSize, f.wrapWriter)
		f.senders = append(f.senders, s)
		go s.run()
	}
	defer func() {
		if err != nil {
			f.src.close()
			f.src = nil
			f.closeDests()
		}
	}()
	for _, o := range outs {
		if _, err := f.add(o); err != nil {
			return fmt.Errorf("--to: %w", err)
		}
	}
	if f.SDPFile != "" {
		if err := f.writeStaticSDP(); err != nil {
			return err
		}
	}
	if play != nil {
		if err := play(); err != nil {
			return err
		}
	}
	go func() {
		err := f.src.run()
		f.err = err
		close(f.done)
	}()
	f.Log.Info("relaying", "from", f.src.addr(), "to", len(outs))
	return nil
}

func (f *Fanout) defaults() {
	defaults.Set(&f.QueueLen, DefaultQueueLen)
	defaults.Set(&f.BatchSize, DefaultBatchSize)
	defaults.Set(&f.MaxPacketSize, DefaultMaxPacketSize)
	defaults.Set(&f.MaxPackets, DefaultMaxPackets)
	defaults.Set(&f.ReadBuffer, DefaultReadBuffer)
	defaults.Set(&f.Senders, DefaultSenders)
	defaults.Set(&f.MaxDestinations, DefaultMaxDestinations)
	if f.LookupHost == nil {
		f.LookupHost = SystemLookup
	}
	defaults.Set(&f.RTPMap, DefaultRTPMap)
	if f.Log == nil {
		f.Log = slog.New(slog.DiscardHandler)
	}
}

// Addr is the input as bound, e.g. udp://127.0.0.1:40000 for a --from
// with port 0. Valid after Start.
func (f *Fanout) Addr() string { return f.src.addr() }

// Wait blocks until the input ends: nil after Close, the error if the input
// failed (for example the RTSP server went away).
func (f *Fanout) Wait() error {
	<-f.done
	return f.err
}

// Close stops the input and every output. It is idempotent.
func (f *Fanout) Close() {
	f.closeOnce.Do(func() {
		if f.src == nil { // Start failed or was not called
			return
		}
		f.src.close()
		<-f.done
		f.closeDests()
	})
}

// closeDests stops the senders and closes every output, but keeps them
// listed, so Stats after Close still reports the final counts.
func (f *Fanout) closeDests() {
	f.mu.Lock()
	f.closed = true
	ds := *f.dests.Load()
	f.mu.Unlock()
	for _, s := range f.senders {
		s.close()
	}
	for _, d := range ds {
		d.q.close()
	}
}

// Add opens a new output given as a URL and returns its canonical name.
func (f *Fanout) Add(to string) (string, error) {
	o, err := parseOutput(to, f.LookupHost)
	if err != nil {
		return "", err
	}
	return f.add(o)
}

func (f *Fanout) add(o Output) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return "", ErrClosed
	}
	cur := *f.dests.Load()
	for _, d := range cur {
		if d.out.Addr == o.Addr {
			return "", fmt.Errorf("%s: %w", o.Addr, ErrExists)
		}
	}
	if len(cur) >= f.MaxDestinations {
		return "", fmt.Errorf("%s: %w: %d is the limit (--max-destinations)", o, ErrTooMany, f.MaxDestinations)
	}
	key, ifi, err := outputKey(o, f.ifi)
	if err != nil {
		return "", fmt.Errorf("%s: %w", o, err)
	}
	if err := checkRoute(o, ifi); err != nil {
		return "", fmt.Errorf("%s: %w", o, err)
	}
	d, err := newDest(o, f.channels, f.QueueLen)
	if err != nil {
		return "", err
	}
	least := f.senders[0]
	for _, s := range f.senders[1:] {
		if s.load() < least.load() {
			least = s
		}
	}
	if err := least.add(d, key, ifi); err != nil {
		return "", fmt.Errorf("%s: %w", o, err)
	}
	// Copy on write: the input reads the set without a lock.
	next := append(slices.Clip(cur), d)
	f.dests.Store(&next)
	f.Log.Debug("output added", "to", d.name)
	return d.name, nil
}

// Remove closes the output with the same address as to.
func (f *Fanout) Remove(to string) (string, error) {
	o, err := parseOutput(to, f.LookupHost)
	if err != nil {
		return "", err
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return "", ErrClosed
	}
	cur := *f.dests.Load()
	i := slices.IndexFunc(cur, func(d *dest) bool { return d.out.Addr == o.Addr })
	if i < 0 {
		f.mu.Unlock()
		return "", fmt.Errorf("%s: %w", o.Addr, ErrNotFound)
	}
	d := cur[i]
	next := slices.Delete(slices.Clone(cur), i, i+1)
	f.dests.Store(&next)
	d.s.remove(d)
	f.mu.Unlock()
	// An input holding the old set may still push to d: its closed queue
	// releases such packets at once. Its sender may still be sending a
	// batch to it, which is harmless.
	d.q.close()
	f.removedDrops.Add(d.stats().Drops)
	f.Log.Debug("output removed", "to", d.name)
	return d.name, nil
}

// List returns the canonical names of the outputs, in the order added.
func (f *Fanout) List() []string {
	ds := *f.dests.Load()
	names := make([]string, len(ds))
	for i, d := range ds {
		names[i] = d.name
	}
	return names
}

// dispatch hands pkts, each holding one reference owned by the caller, to
// every destination, then drops the caller's references. The first
// sender's destinations are sent to right here, the others' are woken.
// It never waits on a socket and allocates nothing.
func (f *Fanout) dispatch(pkts []*packet) {
	for i, s := range f.senders {
		wake := false
		for _, d := range *s.dests.Load() {
			if d.q.push(pkts) {
				wake = true
			}
		}
		switch {
		case !wake:
		case i == 0:
			s.sweepNow()
		default:
			s.signal()
		}
	}
	for _, p := range pkts {
		p.release()
	}
}

func (f *Fanout) pickSDPOutput(outs []Output) (Output, error) {
	if f.SDPTo != "" {
		o, err := parseOutput(f.SDPTo, f.LookupHost)
		if err != nil {
			return Output{}, fmt.Errorf("--sdp output: %w", err)
		}
		return o, nil
	}
	for _, o := range outs {
		if o.Multicast() {
			return o, nil
		}
	}
	if len(outs) == 0 {
		return Output{}, errors.New("--sdp describes an output: give at least one --to")
	}
	return outs[0], nil
}
