package fanout

import "sync/atomic"

// packet is one received datagram shared by every destination that queued
// it; the last one to release it returns it to the pool, so the data path
// neither copies per destination nor allocates in steady state.
type packet struct {
	buf  []byte
	n    int
	ch   uint8 // 2*media index, +1 for RTCP: the destination port offset
	refs atomic.Int32
	pool *pool
}

func (p *packet) data() []byte { return p.buf[:p.n] }

func (p *packet) release() {
	if p.refs.Add(-1) == 0 {
		p.pool.put(p)
	}
}

// pool hands out packet buffers. It grows on demand up to max packets and
// then refuses (the caller drops and counts), so memory stays bounded
// whatever the destinations do.
type pool struct {
	free      chan *packet
	size      int
	max       int64
	allocated atomic.Int64
}

func newPool(size, max int) *pool {
	return &pool{free: make(chan *packet, max), size: size, max: int64(max)}
}

// get returns a packet with one reference, or nil when max packets are in
// flight.
func (p *pool) get() *packet {
	var pk *packet
	select {
	case pk = <-p.free:
	default:
		if p.allocated.Add(1) > p.max {
			p.allocated.Add(-1)
			return nil
		}
		pk = &packet{buf: make([]byte, p.size), pool: p}
	}
	pk.refs.Store(1)
	return pk
}

func (p *pool) put(pk *packet) {
	pk.n = 0
	pk.ch = 0
	select {
	case p.free <- pk:
	default: // cannot happen: free holds at most max packets
	}
}
