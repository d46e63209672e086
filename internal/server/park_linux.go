package server

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
)

// parker holds the idle relay connections: a connection with nothing to
// read is watched by one epoll set instead of a goroutine blocked in its
// read, and a goroutine is started for it when it has input again. A
// server holds thousands of connections that each say something every
// few seconds; their goroutines' stacks were most of its memory.
//
// A parked session is only in parked; whoever takes it out (its input,
// its close, the server stopping) starts the one goroutine that serves
// it next.
type parker struct {
	s       *Server
	epfd    int
	mu      sync.Mutex
	parked  map[uint64]*session // by parkKey
	next    uint64
	stopped bool // no more parking: the server is stopping
}

func newParker(s *Server) (*parker, error) {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	// Non-blocking, the epoll set is itself waited for by the runtime's
	// poller (run): no thread blocks in epoll_wait.
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, err
	}
	return &parker{s: s, epfd: fd, parked: map[uint64]*session{}}, nil
}

// park hands ss to the parker if its connection can be watched, and
// reports whether it did; the caller's goroutine then must not touch ss
// again.
func (p *parker) park(ss *session) bool {
	if p == nil {
		return false
	}
	rc, err := ss.conn.SyscallConn()
	if err != nil {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || !ss.alive() {
		return false
	}
	if ss.parkKey == 0 {
		p.next++
		ss.parkKey = p.next
	}
	op := syscall.EPOLL_CTL_MOD // re-arm (one-shot)
	if !ss.watched {
		op = syscall.EPOLL_CTL_ADD
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP | syscall.EPOLLONESHOT,
		Fd: int32(ss.parkKey), Pad: int32(ss.parkKey >> 32)}
	var cerr error
	if err := rc.Control(func(fd uintptr) { cerr = syscall.EpollCtl(p.epfd, op, int(fd), &ev) }); err != nil || cerr != nil {
		return false // the goroutine keeps reading
	}
	ss.watched = true
	p.parked[ss.parkKey] = ss
	return true
}

// wake takes ss out if it is parked and serves it: its connection was
// closed (a parked connection closed by us gives no epoll event).
func (p *parker) wake(ss *session) {
	if p == nil {
		return
	}
	p.mu.Lock()
	_, ok := p.parked[ss.parkKey]
	delete(p.parked, ss.parkKey)
	p.mu.Unlock()
	if ok {
		p.s.resume(ss)
	}
}

// run waits for parked connections' input until the server stops, then
// serves every parked session so that it ends.
func (p *parker) run(ctx context.Context) {
	f := os.NewFile(uintptr(p.epfd), "epoll") // a pollable file: epfd is non-blocking
	defer f.Close()
	stop := context.AfterFunc(ctx, func() { f.Close() })
	defer stop()
	rc, err := f.SyscallConn()
	if err != nil {
		p.s.fail(fmt.Errorf("parker: %w", err))
	} else {
		events := make([]syscall.EpollEvent, 256)
		var werr error
		err = rc.Read(func(fd uintptr) bool {
			for {
				n, err := syscall.EpollWait(int(fd), events, 0)
				if errors.Is(err, syscall.EINTR) {
					continue
				}
				if err != nil {
					werr = err
					return true
				}
				p.resume(events[:n])
				if n < len(events) {
					return false // drained: wait for the set to be readable again
				}
			}
		})
		if err == nil {
			err = werr
		}
		if err != nil && ctx.Err() == nil {
			p.s.fail(fmt.Errorf("parker: %w", err))
		}
	}
	p.mu.Lock()
	p.stopped = true
	all := p.parked
	p.parked = nil
	p.mu.Unlock()
	for _, ss := range all {
		go p.s.serve(ss, true) // the workers are ending too
	}
}

// resume serves the parked sessions with input.
func (p *parker) resume(events []syscall.EpollEvent) {
	for _, ev := range events {
		key := uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
		p.mu.Lock()
		ss := p.parked[key]
		delete(p.parked, key)
		p.mu.Unlock()
		if ss != nil {
			p.s.resume(ss)
		}
	}
}
