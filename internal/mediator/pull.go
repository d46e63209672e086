package mediator

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"github.com/ocm-overlay/ocm/internal/allow"
)

// pull is one RTSP client session reading a stream from an upstream.
type pull struct {
	id   uint64
	up   Upstream
	c    *gortsplib.Client
	desc *description.Session

	last    atomic.Int64 // unix nanos of the last RTP packet, 0 before the first
	packets atomic.Uint64
	done    chan struct{}
	err     error // valid after done is closed
}

var pullIDs atomic.Uint64

// pullConfig says how pulls connect.
type pullConfig struct {
	DialTimeout time.Duration
	ReadTimeout time.Duration
	Transport   *gortsplib.Transport // nil: automatic (UDP, then TCP)
	// Allow, when set, checks every address the pull dials, redirects
	// included: set for pulls from the origin itself.
	Allow *allow.List
}

// openPull connects to up, describes, sets up every media and plays.
// onPacket receives each packet with the index of its media in desc.
// Packets flow only once start is called, so the caller can attach the pull
// to its forwarder first.
func openPull(ctx context.Context, up Upstream, cfg pullConfig,
	onPacket func(p *pull, media int, pkt *rtp.Packet),
) (*pull, error) {
	u, err := base.ParseURL(up.URL)
	if err != nil {
		return nil, fmt.Errorf("upstream URL %q: %w", up.URL, err)
	}
	p := &pull{id: pullIDs.Add(1), up: up, done: make(chan struct{})}
	dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 15 * time.Second}
	dial := dialer.DialContext
	if cfg.Allow != nil {
		dial = cfg.Allow.Dial(dialer)
	}
	p.c = &gortsplib.Client{
		Scheme:      u.Scheme,
		Host:        u.Host,
		ReadTimeout: cfg.ReadTimeout,
		Transport:   cfg.Transport,
		UserAgent:   relayUserAgent,
		DialContext: func(dctx context.Context, network, address string) (net.Conn, error) {
			dctx, cancel := context.WithTimeout(dctx, cfg.DialTimeout)
			defer cancel()
			return dial(dctx, network, address)
		},
	}
	if err := p.c.Start2(); err != nil {
		return nil, err
	}
	// Close the client if ctx ends while we are still negotiating.
	stop := context.AfterFunc(ctx, p.c.Close)
	defer stop()

	desc, _, err := p.c.Describe(u)
	if err != nil {
		p.c.Close()
		return nil, fmt.Errorf("describe %s: %w", up.URL, err)
	}
	if err := p.c.SetupAll(desc.BaseURL, desc.Medias); err != nil {
		p.c.Close()
		return nil, fmt.Errorf("setup %s: %w", up.URL, err)
	}
	p.desc = desc
	index := make(map[*description.Media]int, len(desc.Medias))
	for i, m := range desc.Medias {
		index[m] = i
	}
	p.c.OnPacketRTPAny(func(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
		p.last.Store(time.Now().UnixNano())
		p.packets.Add(1)
		onPacket(p, index[medi], pkt)
	})
	if ctx.Err() != nil {
		p.c.Close()
		return nil, ctx.Err()
	}
	return p, nil
}

// start sends PLAY and watches the session until it ends.
func (p *pull) start() error {
	if _, err := p.c.Play(nil); err != nil {
		p.c.Close()
		return fmt.Errorf("play %s: %w", p.up.URL, err)
	}
	go func() {
		p.err = p.c.Wait()
		close(p.done)
	}()
	return nil
}

// close ends the session; done is closed once it has.
func (p *pull) close() { p.c.Close() }

// idle reports how long no packet has arrived, counting from since when
// none has arrived yet.
func (p *pull) idle(now time.Time, since time.Time) time.Duration {
	last := p.last.Load()
	if last == 0 {
		return now.Sub(since)
	}
	return now.Sub(time.Unix(0, last))
}

// compatible checks that desc describes the same medias and formats as the
// stream already served, so packets can be forwarded unchanged.
func compatible(served, desc *description.Session) error {
	if len(served.Medias) != len(desc.Medias) {
		return fmt.Errorf("upstream has %d medias, the stream served has %d", len(desc.Medias), len(served.Medias))
	}
	for i, m := range served.Medias {
		d := desc.Medias[i]
		if len(m.Formats) != len(d.Formats) {
			return fmt.Errorf("media %d: upstream has %d formats, the stream served has %d", i, len(d.Formats), len(m.Formats))
		}
		for j, f := range m.Formats {
			g := d.Formats[j]
			if f.Codec() != g.Codec() || f.PayloadType() != g.PayloadType() {
				return fmt.Errorf("media %d: upstream sends %s/%d, the stream served is %s/%d",
					i, g.Codec(), g.PayloadType(), f.Codec(), f.PayloadType())
			}
		}
	}
	return nil
}
