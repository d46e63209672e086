package fanout

import (
	"fmt"
	"net"
	"sync/atomic"
)

// dest is one output: its addresses (RTP, RTCP on port+1, further medias
// on port+2...), a bounded queue, and the sender and socket that drain
// it.
type dest struct {
	out   Output
	name  string
	addrs []*net.UDPAddr // by channel; nil where nothing is sent
	q     *queue
	s     *sender
	sock  *outSocket // the sender's socket for this kind of output

	packets atomic.Uint64
	bytes   atomic.Uint64
	drops   atomic.Uint64 // failed sends; the queue counts its own
	errs    atomic.Uint64
	lastErr atomic.Value // string
}

func newDest(o Output, channels, queueLen int) (*dest, error) {
	d := &dest{out: o, name: o.String(), addrs: make([]*net.UDPAddr, channels), q: newQueue(queueLen)}
	for ch := range channels {
		if ch%2 == 1 && !o.RTCP {
			continue
		}
		port := int(o.Addr.Port()) + ch
		if port > 65535 {
			return nil, fmt.Errorf("%s: port %d out of range for channel %d", d.name, port, ch)
		}
		a := o.Addr.Addr()
		d.addrs[ch] = &net.UDPAddr{IP: a.AsSlice(), Port: port, Zone: a.Zone()}
	}
	return d, nil
}

func (d *dest) failed(err error) {
	d.errs.Add(1)
	d.drops.Add(1)
	d.lastErr.Store(err.Error())
}

// stats is a snapshot of the destination's counters.
func (d *dest) stats() OutStats {
	queued, qdrops := d.q.state()
	s := OutStats{
		To:      d.name,
		Packets: d.packets.Load(),
		Bytes:   d.bytes.Load(),
		Drops:   qdrops + d.drops.Load(),
		Errors:  d.errs.Load(),
		Queued:  queued,
	}
	if e, ok := d.lastErr.Load().(string); ok {
		s.LastError = e
	}
	return s
}
