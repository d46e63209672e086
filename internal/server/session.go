package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// session is one relay connection after its hello. Its reader goroutine
// (serve) reads messages and hands them to the state goroutine (heartbeats
// it answers itself); its writer goroutine drains out, so the state
// goroutine never blocks on a slow relay. node is set before; since
// belongs to the state goroutine; lastSeen is written by the reader and
// read by the state goroutine.
//
// A server holds thousands of these, nearly all idle: a session keeps no
// logger (log builds one), no queue while nothing waits to be sent, and
// no goroutine nor read buffer while nothing waits to be read (parker).
type session struct {
	conn       *wire.Conn
	remote     string
	base       *slog.Logger // the server's: log adds the session's attributes
	out        *sendQueue
	done       chan struct{} // closed by close
	readEnded  chan struct{} // closed when the read loop has ended: the connection is going
	readerDone chan struct{} // closed when the reader stops reading (after draining)
	once       sync.Once
	stop       func() bool // ends the close on server stop (context.AfterFunc)
	parker     *parker     // nil: the reader goroutine stays
	workers    *workers    // run the writer (nil: a goroutine of its own)
	parkKey    uint64      // the parker's, under its lock
	watched    bool        // in the parker's epoll set (re-armed, not added)

	node     string
	lastSeen atomic.Int64 // unix ns by the server's clock: the last message read
	since    time.Time
	drained  bool // an operator drained it: a left for a stream it is no longer in is acked
}

// outMsg is one queued message; close ends the connection after it (a
// close with no body only ends it).
type outMsg struct {
	m     wire.Msg
	close bool
}

// linger bounds how long a connection ending with a final error waits for
// the peer to read it (see wire.Conn.Linger).
const linger = 500 * time.Millisecond

func newSession(c *wire.Conn, node string, log *slog.Logger) *session {
	return &session{conn: c, node: node, remote: c.RemoteAddr().String(), base: log,
		out: newSendQueue(), done: make(chan struct{}), readEnded: make(chan struct{}),
		readerDone: make(chan struct{}), stop: func() bool { return false }}
}

// log returns the session's logger. It is built at each use, which costs
// little next to writing a line, rather than kept by every idle session.
func (ss *session) log() *slog.Logger { return ss.base.With("remote", ss.remote, "node", ss.node) }

// debug reports whether debug lines are logged: the hot paths check it
// before building the logger.
func (ss *session) debug() bool { return ss.base.Enabled(context.Background(), slog.LevelDebug) }

// seen records that a message was read at now.
func (ss *session) seen(now time.Time) { ss.lastSeen.Store(now.UnixNano()) }

// silentFor returns how long before now the last message was read.
func (ss *session) silentFor(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, ss.lastSeen.Load()))
}

// alive reports whether the session's connection still reads: a session
// whose read loop has ended (closed by the relay, failed, kicked) is
// going, its state-goroutine cleanup perhaps not run yet.
func (ss *session) alive() bool {
	select {
	case <-ss.readEnded:
		return false
	case <-ss.done:
		return false
	default:
		return true
	}
}

// enqueue queues a message without blocking; a full queue means the relay
// does not read, so it is disconnected. A writer goroutine runs while
// messages wait, and only then.
func (ss *session) enqueue(o outMsg) {
	ok, start := ss.out.put(o)
	switch {
	case !ok:
		ss.log().Warn("send queue full: disconnecting", "queued", maxQueued)
		ss.close()
	case start:
		ss.workers.do(ss.writeLoop)
	}
}

// sendQueue is a session's outgoing queue, at most maxQueued messages,
// and the state of its writer. It holds memory only while messages wait:
// a relay connection is idle nearly all the time, and thousands of them
// must not each keep a queue, nor a writer goroutine's stack, allocated.
type sendQueue struct {
	mu      sync.Mutex
	msgs    []outMsg
	running bool       // a writer goroutine is draining msgs
	closed  bool       // the session is over: nothing more is queued
	idle    *sync.Cond // signalled when the writer stops
}

func newSendQueue() *sendQueue {
	q := &sendQueue{}
	q.idle = sync.NewCond(&q.mu)
	return q
}

// put appends o. ok is false if the queue already holds maxQueued; start
// is true if the caller must start a writer.
func (q *sendQueue) put(o outMsg) (ok, start bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return true, false // the connection is going: drop it
	}
	if len(q.msgs) >= maxQueued {
		return false, false
	}
	q.msgs = append(q.msgs, o)
	start = !q.running
	q.running = true
	return true, start
}

// take removes and returns what is queued; when nothing is (or the
// session is over) it marks the writer stopped and returns nil.
func (q *sendQueue) take() []outMsg {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := q.msgs
	q.msgs = nil
	if len(out) == 0 || q.closed {
		q.running = false
		q.idle.Broadcast()
		return nil
	}
	return out
}

// close stops queueing and waits for the writer to stop.
func (q *sendQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for q.running {
		q.idle.Wait()
	}
	q.msgs = nil
}

// push sends a message the relay did not ask for.
func (ss *session) push(b wire.Body) { ss.enqueue(outMsg{m: wire.Msg{Body: b}}) }

// reply answers message re.
func (ss *session) reply(re uint64, b wire.Body) { ss.enqueue(outMsg{m: wire.Msg{Re: re, Body: b}}) }

// sendAndClose sends a final error after what is queued, then ends the
// connection.
func (ss *session) sendAndClose(e *wire.Error) { ss.replyAndClose(0, e) }

// replyAndClose answers message re with a final error, then ends the
// connection.
func (ss *session) replyAndClose(re uint64, e *wire.Error) {
	ss.enqueue(outMsg{m: wire.Msg{Re: re, Body: e}, close: true})
}

// close ends the connection at once (a parked session is woken to end).
func (ss *session) close() {
	ss.once.Do(func() {
		close(ss.done)
		ss.conn.Close()
		ss.parker.wake(ss)
	})
}

// writeLoop writes queued messages until none is left, or the session
// is over. After a final message it half-closes and gives the reader
// (which drains the peer's input) up to linger before closing.
func (ss *session) writeLoop() {
	for {
		msgs := ss.out.take()
		if msgs == nil {
			return
		}
		for i, o := range msgs {
			if !ss.write(o) {
				clear(msgs[i:])
				ss.out.mu.Lock()
				ss.out.closed = true
				ss.out.mu.Unlock()
				ss.out.take() // marks the writer stopped
				return
			}
		}
	}
}

// write writes one queued message; false once the session is over (an
// error, or a final message).
func (ss *session) write(o outMsg) bool {
	var err error
	switch {
	case o.m.Body == nil:
	case o.m.Re != 0:
		err = ss.conn.Reply(o.m.Re, o.m.Body)
	default:
		_, err = ss.conn.Send(o.m.Body)
	}
	if err != nil && (errors.Is(err, wire.ErrInvalid) || errors.Is(err, wire.ErrLineTooLong)) {
		// Our bug, not the relay's: drop the message, keep the relay.
		ss.log().Error("unsendable message", "type", o.m.Body.Type(), "err", err)
		err = nil
	}
	if err != nil {
		ss.close()
		return false
	}
	if o.close {
		_ = ss.conn.CloseWrite()
		t := time.NewTimer(linger)
		select {
		case <-ss.readerDone:
		case <-t.C:
		case <-ss.done:
		}
		t.Stop()
		ss.close()
		return false
	}
	return true
}

// serveConn runs one connection: hello, then its messages (serve) until
// it ends. The accept loop counted it (nconns, conns); connDone uncounts
// it when it ends, which after a hello may be on another goroutine.
func (s *Server) serveConn(nc net.Conn) {
	c := wire.NewConn(nc)
	c.SetMaxLine(s.MaxLine)
	c.SetWriteTimeout(s.WriteTimeout)
	stop := context.AfterFunc(s.ctx, func() { c.Close() })
	ended := func() { stop(); c.Close(); s.connDone() }

	c.SetReadTimeout(s.HelloTimeout)
	m, err := c.ReadMsg()
	if err != nil {
		s.rejectFirst(c, s.connLog(c), m, err)
		ended()
		return
	}
	h, ok := m.Body.(*wire.Hello)
	if !ok {
		s.refuse(c, s.connLog(c), m.ID, wire.CodeExpectedHello, "the first message must be a hello, got "+m.Type)
		ended()
		return
	}
	if !wire.CheckToken(s.Token, h.Token) {
		msg := "bad token"
		if h.Token == "" {
			msg = "this server requires a token"
		}
		s.refuse(c, s.connLog(c).With("node", h.Node), m.ID, wire.CodeUnauthorized, msg)
		ended()
		return
	}

	s.awaitDuplicate(h.Node)

	ss := newSession(c, h.Node, s.Log)
	ss.parker, ss.workers, ss.stop = s.parker, s.workers, stop
	welcomed := false
	if s.call(s.ctx, func(st *state) { welcomed = st.hello(ss, m.ID, h) }) != nil || !welcomed {
		close(ss.readEnded)
		s.endSession(ss)
		return
	}

	c.SetReadTimeout((MissedHeartbeats + 1) * s.Heartbeat)
	s.serve(ss, false)
}

// serve reads ss's messages until its connection ends, then ends the
// session; or until nothing is left to read, then parks it (resumed:
// the parker saw input, so it reads before parking again).
func (s *Server) serve(ss *session, resumed bool) {
	end, parked := s.readLoop(ss, resumed)
	if parked {
		return
	}
	close(ss.readEnded)
	_ = s.call(s.ctx, func(st *state) { st.closed(ss, end) })
	s.endSession(ss)
}

// resume serves a parked session that has input (or was closed) again.
func (s *Server) resume(ss *session) { s.workers.do(func() { s.serve(ss, true) }) }

// endSession lets the writer flush what is queued (a final error),
// draining the peer meanwhile, then closes.
func (s *Server) endSession(ss *session) {
	ss.enqueue(outMsg{close: true})
	ss.conn.Discard(linger)
	close(ss.readerDone)
	ss.out.close()
	ss.close()
	ss.stop()
	s.connDone()
}

// connDone uncounts a connection that has ended.
func (s *Server) connDone() {
	s.nconns.Add(-1)
	s.conns.Done()
}

// connLog is the logger of a connection before its session.
func (s *Server) connLog(c *wire.Conn) *slog.Logger {
	return s.Log.With("remote", c.RemoteAddr().String())
}

// duplicateGrace bounds how long a hello waits for the connection that
// holds its node id to end: a relay reconnecting closes its old
// connection just before, and the server may not have read that close
// yet. A connection that is still alive after it keeps the id.
const duplicateGrace = time.Second

// awaitDuplicate waits, up to duplicateGrace (Server.duplicateGrace),
// for a live session holding node to end; the hello then takes its place
// (or is refused by state.hello if it is still alive).
func (s *Server) awaitDuplicate(node string) {
	var old *session
	if s.call(s.ctx, func(st *state) { old = st.sessions[node] }) != nil || old == nil || !old.alive() {
		return
	}
	t := time.NewTimer(s.duplicateGrace)
	defer t.Stop()
	select {
	case <-old.readEnded:
	case <-old.done:
	case <-t.C:
	case <-s.ctx.Done():
	}
}

// ending is why a connection ended: a cause from the fixed set (see
// cause.go), the error's text for the event and the log, and whether the
// relay closed cleanly between messages.
type ending struct {
	cause, detail string
	clean         bool
}

// readLoop reads messages until the connection ends and returns why, or
// until nothing is left to read and ss is parked (then ss is no longer
// this goroutine's). Heartbeats are answered here: they change no state,
// so they do not wait behind a flash crowd's joins in the state goroutine
// (their round trip is what a relay judges the server's health by).
func (s *Server) readLoop(ss *session, resumed bool) (end ending, parked bool) {
	for {
		if !resumed && ss.conn.Release() && s.parker.park(ss) {
			return ending{}, true
		}
		resumed = false
		m, err := ss.conn.ReadMsg()
		if err != nil {
			switch {
			case errors.Is(err, wire.ErrMalformed), errors.Is(err, wire.ErrInvalid):
				s.badInput(ss.log(), ss.remote, wire.CodeBadRequest, err)
				ss.reply(m.ID, &wire.Error{Code: wire.CodeBadRequest, Message: err.Error()})
				continue
			case errors.Is(err, wire.ErrUnknownType):
				s.badInput(ss.log(), ss.remote, wire.CodeUnknownType, err)
				ss.reply(m.ID, &wire.Error{Code: wire.CodeUnknownType, Message: err.Error()})
				continue
			}
			cause, clean := readEnd(err)
			switch cause {
			case causeTruncated:
				ss.log().Warn("connection lost mid-message", "err", err)
			case causeLineTooLong:
				s.badInput(ss.log(), ss.remote, wire.CodeLineTooLong, err)
				ss.sendAndClose(&wire.Error{Code: wire.CodeLineTooLong, Message: err.Error()})
			case causeVersion:
				s.badInput(ss.log(), ss.remote, wire.CodeVersion, err)
				ss.sendAndClose(&wire.Error{Code: wire.CodeVersion, Message: err.Error()})
			}
			return ending{cause: cause, detail: err.Error(), clean: clean}, false
		}
		ss.seen(s.Now())
		switch m.Body.(type) {
		case *wire.Hello:
			ss.reply(m.ID, &wire.Error{Code: wire.CodeUnexpected, Message: "hello already received"})
			continue
		case *wire.Heartbeat:
			ss.reply(m.ID, &wire.Heartbeat{})
			continue
		}
		read := time.Now()
		if s.call(s.ctx, func(st *state) { st.handleRead(ss, m, read) }) != nil {
			return ending{cause: causeStopping}, false
		}
		select {
		case <-ss.done:
			return ending{cause: causeByServer}, false
		default:
		}
	}
}

// rejectFirst answers a first message that could not be read, then the
// caller closes.
func (s *Server) rejectFirst(c *wire.Conn, log *slog.Logger, m wire.Msg, err error) {
	var ne net.Error
	code := wire.CodeBadRequest
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		log.Debug("closed before hello")
		return
	case errors.As(err, &ne) && ne.Timeout():
		log.Warn("no hello in time", "timeout", s.HelloTimeout)
		return
	case errors.Is(err, wire.ErrTruncated):
		log.Warn("closed in the middle of its hello", "err", err)
		return
	case errors.Is(err, wire.ErrLineTooLong):
		code = wire.CodeLineTooLong
	case errors.Is(err, wire.ErrVersion):
		code = wire.CodeVersion
	case errors.Is(err, wire.ErrUnknownType):
		code = wire.CodeUnknownType
	}
	s.refuse(c, log, m.ID, code, err.Error())
}

// refuse sends a final error to a connection that has no session yet.
func (s *Server) refuse(c *wire.Conn, log *slog.Logger, re uint64, code, msg string) {
	s.badInput(log, c.RemoteAddr().String(), code, errors.New(msg))
	if c.WriteMsg(wire.Msg{Re: re, Body: &wire.Error{Code: code, Message: msg}}) == nil {
		c.Linger(linger)
	}
}

// badInput logs and reports one rejected input.
func (s *Server) badInput(log *slog.Logger, remote, code string, err error) {
	log.Warn("rejected input", "code", code, "err", err)
	s.Events.Emit(event.Rejected{Remote: remote, Code: code, Message: err.Error()})
	_ = s.call(s.ctx, func(st *state) { st.m.rejected.inc(code) })
}
