package mediator

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/pion/rtp"

	"github.com/ocm-overlay/ocm/internal/allow"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/streamurl"
)

// The gortsplib.ServerHandler callbacks. Each runs in the goroutine of the
// connection or session that made the request, so a slow upstream only
// delays its own requester.

// OnConnOpen logs the connection.
func (m *Mediator) OnConnOpen(ctx *gortsplib.ServerHandlerOnConnOpenCtx) {
	m.Log.Debug("conn opened", "remote", ctx.Conn.NetConn().RemoteAddr())
}

// OnConnClose logs why the connection ended.
func (m *Mediator) OnConnClose(ctx *gortsplib.ServerHandlerOnConnCloseCtx) {
	m.Log.Debug("conn closed", "remote", ctx.Conn.NetConn().RemoteAddr(), "err", ctx.Error)
}

// OnRequest stops the connection's silence clock while it is answered.
func (m *Mediator) OnRequest(sc *gortsplib.ServerConn, req *base.Request) {
	if gc := guardOf(sc.NetConn()); gc != nil {
		gc.requestStarted(req.Method)
	}
}

// OnResponse starts the clock for the next request, until the connection
// plays or records.
func (m *Mediator) OnResponse(sc *gortsplib.ServerConn, res *base.Response) {
	if gc := guardOf(sc.NetConn()); gc != nil {
		gc.responded(res.StatusCode)
	}
}

// OnSessionClose forgets the session as a reader or publisher.
func (m *Mediator) OnSessionClose(ctx *gortsplib.ServerHandlerOnSessionCloseCtx) {
	t, _ := ctx.Session.UserData().(*target)
	if t == nil {
		return
	}
	switch s := t.stream.(type) {
	case *relay:
		s.remove(ctx.Session)
		if s.fan != nil {
			s.fan.remove(ctx.Session)
		}
	case *local:
		if s.publisher != ctx.Session {
			s.readers.Add(-1)
			s.fan.remove(ctx.Session)
			return
		}
		m.reg.remove(s)
		if n := s.pktsIn.Load(); n == 0 {
			// ffmpeg announces and records even when its RTP muxer
			// then refuses the stream (an MJPEG stream that is not
			// RFC 2435 JPEG, say): say so, not just "not in use".
			m.Log.Warn("publisher left without sending a packet; see the publisher's own log",
				"path", "/"+s.name, "err", ctx.Error)
		} else {
			m.Log.Info("publisher left", "path", "/"+s.name, "packets", n, "err", ctx.Error)
		}
		m.Events.Emit(event.Publisher{Path: "/" + s.name, State: "left", Packets: s.pktsIn.Load()})
		s.close()
	}
}

// served is a stream readers are set up on: a *relay or a *local.
type served interface {
	streams() (*gortsplib.ServerStream, *tcpFan)
}

// target is a stream a request named, with the path and query it named
// it by. A connection keeps its last DESCRIBE's target (ServerConn user
// data) and a session the stream it reads or publishes (ServerSession
// user data): the SETUPs and PLAY that follow neither parse the URL again
// nor repeat the allow-list lookup. gortsplib calls one connection's or
// one session's handlers one at a time, so neither needs a lock.
type target struct {
	path, query string
	stream      served // *relay or *local
}

// serverStream is the gortsplib stream of the target, for UDP and
// multicast readers.
func (t *target) serverStream() *gortsplib.ServerStream {
	ss, _ := t.stream.streams()
	return ss
}

// fan returns the target's TCP fan, nil when it has none yet.
func (t *target) fan() *tcpFan {
	if t == nil {
		return nil
	}
	_, f := t.stream.streams()
	return f
}

// OnDescribe serves local streams by path and relays enhanced requests.
// The answer's SDP is ours, with absolute control URLs (describe.go), so
// every player sets up every track on the path it described.
func (m *Mediator) OnDescribe(ctx *gortsplib.ServerHandlerOnDescribeCtx) (*base.Response, *gortsplib.ServerStream, error) {
	res, t := m.admit(ctx.Conn, ctx.Request, ctx.Path, ctx.Query)
	if t == nil {
		return res, nil, nil
	}
	body, err := describeSDP(t.serverStream().Desc, ctx.Request.URL, ctx.Path, ctx.Query)
	if err != nil {
		m.Log.Warn("cannot describe", "url", ctx.Request.URL.String(), "err", err)
		return errorResponse(base.StatusInternalServerError, "cannot write the stream's SDP"), nil, nil
	}
	res.Body = body
	return res, nil, nil
}

// OnSetup attaches the session to the stream as a reader, or accepts the
// tracks of a publisher.
func (m *Mediator) OnSetup(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *gortsplib.ServerStream, error) {
	if ctx.Session.State() == gortsplib.ServerSessionStatePreRecord {
		return &base.Response{StatusCode: base.StatusOK}, nil, nil
	}
	t, _ := ctx.Session.UserData().(*target)
	known := t != nil
	if known && (t.path != ctx.Path || t.query != ctx.Query) {
		// Written differently (a player may): the same stream or a refusal.
		res, other := m.admit(ctx.Conn, ctx.Request, ctx.Path, ctx.Query)
		if other == nil {
			return res, nil, nil
		}
		if other.stream != t.stream {
			return errorResponse(base.StatusBadRequest, "one session cannot read two streams"), nil, nil
		}
	}
	if !known {
		var res *base.Response
		if res, t = m.newReader(ctx); t == nil {
			return res, nil, nil
		}
		ctx.Session.SetUserData(t)
	}
	ss := t.serverStream()
	// TCP readers of our own connections get their media from the fan
	// (fan.go); every SETUP of the session goes to the same stream.
	if conn, ok := ctx.Conn.NetConn().(*coalescingConn); ok && ctx.Transport == gortsplib.TransportTCP {
		if f := t.fan(); f != nil {
			f.setup(ctx.Session, conn, ctx.Request)
			ss = f.shadow
		}
	}
	return &base.Response{StatusCode: base.StatusOK}, ss, nil
}

// newReader admits a session's first SETUP and makes the session a reader
// of the stream. A relay that closed since the connection's DESCRIBE
// (unregistered, no readers for a linger) is found or created again.
func (m *Mediator) newReader(ctx *gortsplib.ServerHandlerOnSetupCtx) (*base.Response, *target) {
	for range 3 {
		res, t := m.admit(ctx.Conn, ctx.Request, ctx.Path, ctx.Query)
		if t == nil {
			return res, nil
		}
		switch s := t.stream.(type) {
		case *relay:
			if !s.add(ctx.Session, isRelayRequest(ctx.Request)) {
				ctx.Conn.SetUserData(nil)
				continue
			}
		case *local:
			s.readers.Add(1)
		}
		return res, t
	}
	return errorResponse(base.StatusServiceUnavailable, "the stream closed while being set up; try again"), nil
}

// OnPlay starts a TCP reader's fan, and keeps multicast within its TTL.
func (m *Mediator) OnPlay(ctx *gortsplib.ServerHandlerOnPlayCtx) (*base.Response, error) {
	if f := m.fanOfSession(ctx.Session); f != nil {
		keyWait := m.KeyframeWait
		if isRelayRequest(ctx.Request) {
			keyWait = 0 // a relay passes the stream on as it comes
		}
		if err := f.play(ctx.Session, keyWait); err != nil {
			m.Log.Warn("cannot play", "remote", ctx.Conn.NetConn().RemoteAddr(), "err", err)
			return errorResponse(base.StatusInternalServerError, err.Error()), nil
		}
	}
	if t := ctx.Session.SetuppedTransport(); t != nil && *t == gortsplib.TransportUDPMulticast {
		if n := setMulticastTTL(m.MulticastPorts, m.MulticastTTL); n > 0 {
			m.Log.Debug("multicast TTL set", "ttl", m.MulticastTTL, "sockets", n)
		}
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnPause stops a TCP reader's fan until it plays again.
func (m *Mediator) OnPause(ctx *gortsplib.ServerHandlerOnPauseCtx) (*base.Response, error) {
	if f := m.fanOfSession(ctx.Session); f != nil {
		f.pause(ctx.Session)
	}
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// fanOfSession returns the fan a reader's session was set up on, if any.
func (m *Mediator) fanOfSession(sess *gortsplib.ServerSession) *tcpFan {
	t, _ := sess.UserData().(*target)
	if f := t.fan(); f != nil && f.has(sess) {
		return f
	}
	return nil
}

// OnAnnounce registers a publisher on its path when publishing is on.
func (m *Mediator) OnAnnounce(ctx *gortsplib.ServerHandlerOnAnnounceCtx) (*base.Response, error) {
	if !m.Publish {
		return errorResponse(base.StatusForbidden, "publishing is off; start rtsp-mediator with --publish"), nil
	}
	if ctx.Query != "" {
		return errorResponse(base.StatusBadRequest, "publish to a plain path, without a query"), nil
	}
	name := strings.Trim(ctx.Path, "/")
	if name == "" {
		return errorResponse(base.StatusBadRequest, "publish to a path, e.g. /live"), nil
	}
	sess, remote := ctx.Session, ctx.Conn.NetConn().RemoteAddr()
	l, err := m.reg.add(name, func() (*local, error) {
		l, err := newLocal(m.srv, name, "publish", ctx.Description, sess)
		if err != nil {
			return nil, err
		}
		l.recordDeadline(m.RecordTimeout, func() {
			m.Log.Warn("publisher sent no RECORD in time: freeing its path", "path", "/"+name,
				"remote", remote, "record_timeout", m.RecordTimeout)
			sess.Close()
		})
		return l, nil
	})
	switch {
	case errors.Is(err, errTaken):
		return errorResponse(base.StatusBadRequest, fmt.Sprintf("/%s is already being published", name)), nil
	case err != nil:
		return errorResponse(base.StatusInternalServerError, err.Error()), nil
	}
	ctx.Session.SetUserData(&target{path: ctx.Path, stream: l})
	m.Log.Info("publisher announced", "path", "/"+name, "remote", ctx.Conn.NetConn().RemoteAddr())
	m.Events.Emit(event.Publisher{Path: "/" + name, State: "announced"})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// OnRecord starts routing the publisher's packets to its readers.
func (m *Mediator) OnRecord(ctx *gortsplib.ServerHandlerOnRecordCtx) (*base.Response, error) {
	var l *local
	if t, ok := ctx.Session.UserData().(*target); ok {
		l, _ = t.stream.(*local)
	}
	if l == nil {
		return errorResponse(base.StatusBadRequest, "RECORD without ANNOUNCE"), nil
	}
	if !l.recording() {
		return errorResponse(base.StatusBadRequest, fmt.Sprintf("RECORD came later than --record-timeout %s after ANNOUNCE", m.RecordTimeout)), nil
	}
	ctx.Session.OnPacketRTPAny(func(medi *description.Media, _ format.Format, pkt *rtp.Packet) {
		l.write(medi, pkt)
	})
	return &base.Response{StatusCode: base.StatusOK}, nil
}

// admit returns the stream a request names, as target. A connection's
// SETUP of what its DESCRIBE named gets DESCRIBE's answer while the stream
// lives: the URL was parsed and the origin judged by the allow list then.
func (m *Mediator) admit(conn *gortsplib.ServerConn, req *base.Request, path, query string) (*base.Response, *target) {
	if t, ok := conn.UserData().(*target); ok && t.path == path && t.query == query && m.lives(t.stream) {
		if r, ok := t.stream.(*relay); ok {
			r.touch()
		}
		return &base.Response{StatusCode: base.StatusOK}, t
	}
	res, s := m.find(req, path, query)
	if s == nil {
		return res, nil
	}
	t := &target{path: path, query: query, stream: s}
	conn.SetUserData(t)
	return res, t
}

// find returns the stream a request names: a local one for a plain path,
// a relay for an enhanced URL (creating it and waiting for its upstream).
func (m *Mediator) find(req *base.Request, path, query string) (*base.Response, served) {
	u := req.URL
	if query == "" {
		name := strings.Trim(path, "/")
		l := m.reg.local(name)
		if l == nil {
			return errorResponse(base.StatusNotFound, fmt.Sprintf(
				"no stream /%s here; to relay one, open rtsp://HOST:PORT/MEDIA?MSHOST:MSPORT", name)), nil
		}
		return &base.Response{StatusCode: base.StatusOK}, l
	}

	o, err := streamurl.ParseEnhanced(path, query)
	if err != nil {
		m.Log.Info("bad enhanced request", "url", u.String(), "err", err)
		return errorResponse(base.StatusBadRequest, err.Error()), nil
	}
	ctx, cancel := context.WithTimeout(m.ctx, m.DescribeTimeout)
	defer cancel()
	if _, err := m.Allow.Check(ctx, o.Host); err != nil {
		if errors.Is(err, allow.ErrNotAllowed) {
			m.Log.Warn("origin not allowed", "origin", o.Addr(), "allow_origin", m.Allow.String(), "err", err)
			return errorResponse(base.StatusForbidden, err.Error()), nil
		}
		m.Log.Warn("origin lookup failed", "origin", o.Addr(), "err", err)
		return errorResponse(base.StatusBadGateway, fmt.Sprintf("origin %s: %s", o.Addr(), publicCause(err))), nil
	}
	if ar, ok := m.Resolver.(interface{ AcceptsRelays() bool }); ok && !ar.AcceptsRelays() && isRelayRequest(req) {
		return errorResponse(base.StatusForbidden, "this host is passive (ocm-relay --willing=false) and relays to no one"), nil
	}
	if rd, ok := m.Resolver.(interface{ RedirectOnly() bool }); ok && rd.RedirectOnly() {
		return m.redirect(ctx, o), nil
	}
	r, err := m.relayFor(o)
	if err != nil {
		return errorResponse(base.StatusServiceUnavailable, err.Error()), nil
	}
	if err := r.waitReady(ctx); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return errorResponse(base.StatusGatewayTimeout, fmt.Sprintf("origin %s did not answer within %s", o.Addr(), m.DescribeTimeout)), nil
		}
		if errors.Is(err, ErrNoRoom) {
			return errorResponse(base.StatusServiceUnavailable, strings.TrimPrefix(publicCause(err), errResolve.Error()+": ")), nil
		}
		if errors.Is(err, allow.ErrNotAllowed) { // the name resolved elsewhere by the time of the dial
			return errorResponse(base.StatusForbidden, publicCause(err)), nil
		}
		return errorResponse(base.StatusBadGateway, fmt.Sprintf("origin %s: %s", o.Addr(), publicCause(err))), nil
	}
	return &base.Response{StatusCode: base.StatusOK}, r
}

// redirect answers with a 302 to the upstream the resolver chooses, so the
// player pulls from it and no media crosses this host.
func (m *Mediator) redirect(ctx context.Context, o streamurl.Origin) *base.Response {
	up, err := m.Resolver.Resolve(ctx, ResolveRequest{Origin: o})
	if err != nil {
		m.Log.Warn("cannot redirect", "stream", o.URL(), "err", err)
		return errorResponse(base.StatusBadGateway, fmt.Sprintf("no upstream for %s: %v", o.URL(), err))
	}
	m.Log.Info("redirecting player", "stream", o.URL(), "to", up.URL)
	m.Events.Emit(event.Redirect{Stream: o.URL(), To: up.URL, Node: up.Node})
	return &base.Response{StatusCode: base.StatusFound, Header: base.Header{"Location": base.HeaderValue{up.URL}}}
}

// relayUserAgent is what mediators send when they pull from each other;
// it tells a downstream relay from a player.
const relayUserAgent = "rtsp-mediator"

func isRelayRequest(req *base.Request) bool {
	ua := req.Header["User-Agent"]
	return len(ua) > 0 && strings.HasPrefix(ua[0], relayUserAgent)
}
