package probe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"github.com/ocm-overlay/ocm/internal/wire"
)

// How a Result was measured.
const (
	ViaUDP  = "udp"  // the probe protocol: RTT and the peer's own metrics
	ViaRTSP = "rtsp" // an RTSP OPTIONS round trip: RTT only
)

// Result is the outcome of one probe.
type Result struct {
	Addr string        // the address probed
	Via  string        // ViaUDP or ViaRTSP
	RTT  time.Duration // round trip of the answered request
	// Info is the peer's answer (ViaUDP), or for ViaRTSP what the
	// candidate said about itself. Zero when Err is set.
	Info Info
	Err  error
}

// Probe sends a probe request for stream to a responder at addr (UDP) and
// waits for the answer. If none came within half the timeout it sends the
// request once more (a new seq); either answer ends the probe and the RTT
// is measured from the request it answers. It never takes longer than
// timeout (DefaultTimeout if <= 0) or ctx allows.
func Probe(ctx context.Context, addr, stream string, timeout time.Duration) Result {
	res := Result{Addr: addr, Via: ViaUDP}
	rtt, info, err := probeUDP(ctx, addr, stream, timeout)
	if err != nil {
		res.Err = fmt.Errorf("probe %s: %w", addr, err)
		return res
	}
	res.RTT, res.Info = rtt, info
	return res
}

func probeUDP(ctx context.Context, addr, stream string, timeout time.Duration) (time.Duration, Info, error) {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	start := time.Now()
	deadline := start.Add(timeout)
	ctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return 0, Info{}, noAnswer(ctx, err, timeout)
	}
	defer conn.Close()
	// Unblock the read at once when ctx ends (cancel or deadline).
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()

	// A random first seq keeps a late answer to someone else's probe (a
	// reused port) from being taken for ours; the socket is connected, so
	// only the probed address can answer at all.
	seq := uint64(rand.Uint32())
	sent := make(map[uint64]time.Time, 2)
	wall := make(map[uint64]int64, 2)
	send := func() error {
		seq++
		now := time.Now()
		b, _ := json.Marshal(request{V: Version, Type: TypeProbe, Seq: seq, Stream: stream, SentNs: now.UnixNano()})
		sent[seq], wall[seq] = now, now.UnixNano()
		_, err := conn.Write(b)
		return err
	}
	if err := send(); err != nil {
		return 0, Info{}, err
	}
	retransmit := start.Add(timeout / 2)
	buf := make([]byte, MaxDatagram+1)
	for {
		wait := deadline
		if len(sent) == 1 {
			wait = retransmit
		}
		if err := conn.SetReadDeadline(wait); err != nil {
			return 0, Info{}, err
		}
		// The AfterFunc may have fired before the line above undid it.
		if ctx.Err() != nil {
			return 0, Info{}, noAnswer(ctx, ctx.Err(), timeout)
		}
		n, err := conn.Read(buf)
		now := time.Now()
		if err != nil {
			var ne net.Error
			if ctx.Err() == nil && errors.As(err, &ne) && ne.Timeout() && len(sent) == 1 {
				if err := send(); err != nil {
					return 0, Info{}, err
				}
				continue
			}
			return 0, Info{}, noAnswer(ctx, err, timeout)
		}
		rep, err := parseReply(buf[:n])
		if err != nil {
			continue
		}
		t, ok := sent[rep.Seq]
		if !ok || wall[rep.Seq] != rep.SentNs {
			continue // not an answer to one of our requests
		}
		return now.Sub(t), rep.Info, nil
	}
}

// parseReply reads an answer datagram; anything else is an error.
func parseReply(b []byte) (reply, error) {
	var rep reply
	if err := decodeDatagram(b, &rep); err != nil {
		return rep, err
	}
	if rep.V != Version || rep.Type != TypeReply {
		return rep, fmt.Errorf("version %d, type %q", rep.V, rep.Type)
	}
	return rep, nil
}

// noAnswer turns a timeout (of the probe or of ctx's deadline) into
// ErrNoAnswer and keeps other errors (refused, cancelled) as they are.
func noAnswer(ctx context.Context, err error, timeout time.Duration) error {
	if errors.Is(ctx.Err(), context.Canceled) {
		return ctx.Err()
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("%w within %v", ErrNoAnswer, timeout)
	}
	return err
}

// ProbeCandidate probes one candidate parent the way Select does: a relay
// with a probe address by the probe protocol, the origin (and a relay
// without a probe address) by an RTSP OPTIONS round trip, with Info then
// taken from the candidate itself (the origin: level 0, willing).
func ProbeCandidate(ctx context.Context, c wire.Candidate, stream string, timeout time.Duration) Result {
	if c.Node != wire.OriginID && c.Probe != "" {
		return Probe(ctx, c.Probe, stream, timeout)
	}
	res := Result{Addr: c.RTSP, Via: ViaRTSP}
	rtt, err := ProbeRTSP(ctx, c.RTSP, timeout)
	if err != nil {
		res.Err = err
		return res
	}
	res.RTT, res.Info = rtt, CandidateInfo(c)
	return res
}

// CandidateInfo is what a candidate probed over RTSP is taken to say:
// the server's view of it; the origin is at level 0 and its CPU unknown.
func CandidateInfo(c wire.Candidate) Info {
	in := Info{
		Node:         c.Node,
		Clients:      c.Clients,
		Level:        c.Level,
		Cores:        c.Cores,
		CPU:          c.CPU,
		Willing:      true, // the server offers willing nodes only
		FreeCapacity: max(0, c.Capacity-c.Clients),
	}
	if c.Node == wire.OriginID {
		in.Level, in.CPU = 0, 0
	}
	return in
}

// ProbeAll probes every candidate in parallel (at most MaxParallel at
// once) and returns the results in the candidates' order.
func ProbeAll(ctx context.Context, cands []wire.Candidate, stream string, timeout time.Duration) []Result {
	out := make([]Result, len(cands))
	sem := make(chan struct{}, MaxParallel)
	var wg sync.WaitGroup
	for i, c := range cands {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i] = ProbeCandidate(ctx, c, stream, timeout)
		}()
	}
	wg.Wait()
	return out
}
