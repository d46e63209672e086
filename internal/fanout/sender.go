package fanout

import (
	"errors"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/ipv4"
)

const (
	// maxMessages is sendmmsg's limit per call (UIO_MAXIOV).
	maxMessages = 1024
	// retryFull is how soon a sender tries again after its socket was
	// full; meanwhile the queues hold, and drop, the newest packets.
	retryFull = time.Millisecond
)

// sender drains the queues of its destinations in rounds, up to a batch
// per destination per round, and sends each round with as few sendmmsg
// calls as there are socket kinds among them: usually one. It never waits
// on a socket. A few senders serve all destinations, so an input packet
// wakes a few goroutines, not one per destination.
type sender struct {
	mu    sync.Mutex // serialises changes to dests and socks
	dests atomic.Pointer[[]*dest]
	socks map[sockKey]*outSocket
	wrap  func(batchWriter) batchWriter // tests: replaces each socket's writer

	pending atomic.Bool // a wake-up is due or queued
	busy    sync.Mutex  // held while sweeping: the fields below are its state
	wake    chan struct{}
	stop    chan struct{}
	exited  chan struct{}

	batch int
	pop   []*packet // one destination's packets of the round
	msgs  []ipv4.Message
	mdst  []*dest   // the destination of each message
	mpkt  []*packet // the packet of each message
	n     int
}

func newSender(batch int, wrap func(batchWriter) batchWriter) *sender {
	s := &sender{
		socks:  map[sockKey]*outSocket{},
		wrap:   wrap,
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		exited: make(chan struct{}),
		batch:  min(batch, maxMessages),
		pop:    make([]*packet, min(batch, maxMessages)),
		msgs:   make([]ipv4.Message, maxMessages),
		mdst:   make([]*dest, maxMessages),
		mpkt:   make([]*packet, maxMessages),
	}
	for i := range s.msgs {
		s.msgs[i].Buffers = make([][]byte, 1)
	}
	empty := []*dest{}
	s.dests.Store(&empty)
	return s
}

// add gives d to the sender, next to the destinations sharing its socket.
func (s *sender) add(d *dest, k sockKey, ifi *net.Interface) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	sock := s.socks[k]
	if sock == nil {
		var err error
		if sock, err = openOutSocket(k, ifi); err != nil {
			return err
		}
		if s.wrap != nil {
			sock.w = s.wrap(sock.w)
		}
		s.socks[k] = sock
	}
	d.s, d.sock = s, sock
	cur := *s.dests.Load()
	i := len(cur)
	for j := len(cur) - 1; j >= 0; j-- {
		if cur[j].sock == sock {
			i = j + 1
			break
		}
	}
	next := slices.Insert(slices.Clone(cur), i, d)
	s.dests.Store(&next)
	return nil
}

func (s *sender) remove(d *dest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := *s.dests.Load()
	if i := slices.Index(cur, d); i >= 0 {
		next := slices.Delete(slices.Clone(cur), i, i+1)
		s.dests.Store(&next)
	}
}

func (s *sender) load() int { return len(*s.dests.Load()) }

// signal wakes the sender; it costs one compare-and-swap when a wake-up
// is already due.
func (s *sender) signal() {
	if s.pending.CompareAndSwap(false, true) {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

func (s *sender) run() {
	defer close(s.exited)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-s.wake:
		case <-retry.C:
		case <-s.stop:
			return
		}
		s.busy.Lock()
		full := s.sweep()
		s.busy.Unlock()
		if full {
			retry.Reset(retryFull)
		}
	}
}

// sweepNow sweeps on the caller's goroutine unless the sender is already
// at it. The input does this for one sender, so at low rates a packet
// goes out without waking another goroutine (and thread) at all.
func (s *sender) sweepNow() {
	if !s.busy.TryLock() {
		s.signal()
		return
	}
	full := s.sweep()
	s.busy.Unlock()
	if full {
		s.signal() // the sender's own goroutine keeps the retry timer
	}
}

// close stops the sender and closes its sockets; the destinations' queues
// are the caller's to close.
func (s *sender) close() {
	close(s.stop)
	<-s.exited
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, sock := range s.socks {
		sock.close()
	}
}

// sweep sends rounds until one finds nothing queued. It reports a full
// socket, which ends the sweep until the retry.
func (s *sender) sweep() (full bool) {
	for {
		s.pending.Store(false)
		progress := false
		var cur *outSocket
		for _, d := range *s.dests.Load() {
			if d.sock != cur || s.n+s.batch > maxMessages {
				if s.flush(cur) {
					return true
				}
				cur = d.sock
			}
			k := d.q.pop(s.pop)
			if k == 0 {
				continue
			}
			progress = true
			for i, p := range s.pop[:k] {
				s.pop[i] = nil
				if int(p.ch) >= len(d.addrs) || d.addrs[p.ch] == nil {
					p.release() // a channel this output does not take
					continue
				}
				m := &s.msgs[s.n]
				m.Buffers[0], m.Addr = p.data(), d.addrs[p.ch]
				s.mdst[s.n], s.mpkt[s.n] = d, p
				s.n++
			}
		}
		if s.flush(cur) {
			return true
		}
		if !progress {
			return false
		}
	}
}

// flush sends the messages built so far on sock and reports whether the
// socket was full; then the unsent packets go back to their queues.
func (s *sender) flush(sock *outSocket) (full bool) {
	if s.n == 0 {
		return false
	}
	done := 0
	for done < s.n {
		n, err := sock.w.WriteBatch(s.msgs[done:s.n], syscall.MSG_DONTWAIT)
		n = max(n, 0) // x/net passes on sendmmsg's -1
		s.sent(done, done+n)
		done += n
		switch {
		case err == nil && n > 0:
			continue
		case err == nil || errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.ENOBUFS):
			s.requeue(done, s.n)
			done, full = s.n, true
		case errors.Is(err, net.ErrClosed):
			for _, p := range s.mpkt[done:s.n] {
				p.release()
			}
			done = s.n
		default:
			// This message failed (no route, refused by a firewall...):
			// it counts against its destination, the rest go on.
			s.mdst[done].failed(err)
			s.mpkt[done].release()
			done++
		}
	}
	for i := range s.n {
		s.msgs[i].Buffers[0], s.msgs[i].Addr = nil, nil
		s.mdst[i], s.mpkt[i] = nil, nil
	}
	s.n = 0
	return full
}

// sent counts messages [i, j) to their destinations, one atomic add per
// destination, and releases their packets.
func (s *sender) sent(i, j int) {
	for i < j {
		d := s.mdst[i]
		var pkts, bytes uint64
		for ; i < j && s.mdst[i] == d; i++ {
			pkts++
			bytes += uint64(len(s.msgs[i].Buffers[0]))
			s.mpkt[i].release()
		}
		d.packets.Add(pkts)
		d.bytes.Add(bytes)
	}
}

// requeue puts messages [i, j) back at the head of their queues; each
// destination's messages are contiguous and in order.
func (s *sender) requeue(i, j int) {
	for i < j {
		d := s.mdst[i]
		k := i
		for k < j && s.mdst[k] == d {
			k++
		}
		d.q.unpop(s.mpkt[i:k])
		i = k
	}
}
