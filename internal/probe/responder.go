package probe

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Responder answers probe requests on a UDP socket.
type Responder struct {
	// Listen is the UDP address to listen on (DefaultListen if empty; port
	// 0 picks a free port, see Addr).
	Listen string
	// Info returns the metrics to answer with for a stream ("" when the
	// request names none). It is called from the responder's goroutine for
	// every answered request, so it must be cheap and safe to call
	// concurrently with the rest of the program. Nil answers Level -1 and
	// nothing else.
	Info func(stream string) Info
	// Rate and Burst bound the answers per second to one source IP
	// (DefaultRate and DefaultBurst when zero; a negative Rate disables
	// the limit). Requests over the limit are dropped and counted.
	Rate  float64
	Burst int
	Log   *slog.Logger

	now func() time.Time // injected by tests

	conn      *net.UDPConn
	done      chan struct{}
	closeOnce sync.Once
	closing   atomic.Bool
	err       error // why serve stopped, set before done is closed

	answered, garbage, limited atomic.Uint64
}

// ResponderStats counts what the responder did with the datagrams it read.
type ResponderStats struct {
	Answered uint64 `json:"answered"` // answers sent (write errors included, logged)
	Garbage  uint64 `json:"garbage"`  // ignored: not a valid request
	Limited  uint64 `json:"limited"`  // dropped by the per-source rate limit
}

// Start fills defaults, binds the socket and starts answering.
func (r *Responder) Start() error {
	if r.conn != nil || r.closing.Load() {
		return errors.New("probe responder already started or closed")
	}
	if r.Listen == "" {
		r.Listen = DefaultListen
	}
	if r.Log == nil {
		r.Log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.Rate == 0 {
		r.Rate = DefaultRate
	}
	if r.Burst <= 0 {
		r.Burst = DefaultBurst
	}
	pc, err := net.ListenPacket("udp", r.Listen)
	if err != nil {
		return fmt.Errorf("probe listen %s: %w", r.Listen, err)
	}
	r.conn = pc.(*net.UDPConn)
	r.done = make(chan struct{})
	r.Log = r.Log.With("component", "probe", "addr", r.conn.LocalAddr().String())
	go r.serve()
	return nil
}

// Addr returns the bound address ("" before Start).
func (r *Responder) Addr() string {
	if r.conn == nil {
		return ""
	}
	return r.conn.LocalAddr().String()
}

// Stats returns the counters.
func (r *Responder) Stats() ResponderStats {
	return ResponderStats{Answered: r.answered.Load(), Garbage: r.garbage.Load(), Limited: r.limited.Load()}
}

// Close stops the responder and waits for its goroutine. It is idempotent.
func (r *Responder) Close() {
	r.closeOnce.Do(func() {
		r.closing.Store(true)
		if r.conn == nil {
			return
		}
		_ = r.conn.Close()
		<-r.done
	})
}

// Wait blocks until the responder stops and returns why (nil after Close).
func (r *Responder) Wait() error {
	if r.done == nil {
		return nil
	}
	<-r.done
	return r.err
}

func (r *Responder) serve() {
	defer close(r.done)
	buf := make([]byte, MaxDatagram+1)
	lim := newLimiter(r.Rate, float64(r.Burst))
	var lastLog time.Time
	// debug logs at most once a second: a flood of garbage must not
	// become a flood of log lines.
	logf := func(msg string, args ...any) {
		if now := r.now(); now.Sub(lastLog) >= time.Second {
			lastLog = now
			st := r.Stats()
			r.Log.Debug(msg, append(args, "garbage", st.Garbage, "limited", st.Limited)...)
		}
	}
	for {
		n, src, err := r.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if r.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			// Stray ICMP errors and the like: keep serving, gently.
			logf("probe read", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		req, err := parseRequest(buf[:n])
		if err != nil {
			r.garbage.Add(1)
			logf("ignored datagram", "from", src, "len", n, "err", err)
			continue
		}
		if !lim.allow(src.Addr().Unmap(), r.now()) {
			r.limited.Add(1)
			logf("rate limited", "from", src)
			continue
		}
		out, err := r.answer(req)
		if err != nil {
			logf("probe answer", "err", err)
			continue
		}
		r.answered.Add(1) // before the write, so a peer that saw the answer sees it counted
		if _, err := r.conn.WriteToUDPAddrPort(out, src); err != nil {
			logf("probe write", "to", src, "err", err)
		}
	}
}

func (r *Responder) answer(req request) ([]byte, error) {
	info := Info{Level: -1}
	if r.Info != nil {
		info = r.Info(req.Stream)
	}
	out, err := json.Marshal(reply{V: Version, Type: TypeReply, Seq: req.Seq, SentNs: req.SentNs, Info: info})
	if err != nil {
		return nil, err
	}
	if len(out) > MaxDatagram {
		return nil, fmt.Errorf("reply of %d bytes exceeds %d", len(out), MaxDatagram)
	}
	return out, nil
}

// maxStream mirrors wire.MaxStreamLen without importing wire here.
const maxStream = 2048

func parseRequest(b []byte) (request, error) {
	var req request
	if err := decodeDatagram(b, &req); err != nil {
		return req, err
	}
	switch {
	case req.V != Version:
		return req, fmt.Errorf("version %d", req.V)
	case req.Type != TypeProbe:
		return req, fmt.Errorf("type %q", req.Type)
	case len(req.Stream) > maxStream:
		return req, errors.New("stream too long")
	}
	return req, nil
}

// decodeDatagram reads one probe datagram, request or answer, into v.
func decodeDatagram(b []byte, v any) error {
	if len(b) > MaxDatagram {
		return fmt.Errorf("longer than %d bytes", MaxDatagram)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("not a JSON probe datagram: %w", err)
	}
	return nil
}

// limiter is a token bucket per source IP, used by the serve goroutine only.
type limiter struct {
	rate, burst float64
	m           map[netip.Addr]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

const (
	limiterPrune = 4096  // prune idle buckets beyond this many sources
	limiterMax   = 65536 // then forget everybody: degrade open, not closed
)

func newLimiter(rate, burst float64) *limiter {
	return &limiter{rate: rate, burst: burst, m: make(map[netip.Addr]*bucket)}
}

func (l *limiter) allow(ip netip.Addr, now time.Time) bool {
	if l.rate < 0 {
		return true
	}
	b := l.m[ip]
	if b == nil {
		if len(l.m) >= limiterPrune {
			l.prune(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.m[ip] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// prune drops the buckets that have refilled: forgetting them changes
// nothing.
func (l *limiter) prune(now time.Time) {
	full := time.Duration(min(l.burst/l.rate, 1e6) * float64(time.Second))
	for ip, b := range l.m {
		if now.Sub(b.last) >= full {
			delete(l.m, ip)
		}
	}
	if len(l.m) >= limiterMax {
		clear(l.m)
	}
}
