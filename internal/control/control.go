// Package control is the local protocol between rtsp-mediator and the
// ocm-relay on the same host (TCP, loopback by default): the message set
// of a wire.Link, so it shares wire's envelope, framing, line limit,
// deadlines and request/response Client. The mediator asks where to pull
// a stream from and says what it does with it; the relay pushes switches
// when the tree changes.
//
//	mediator -> relay  {"v":1,"type":"hello","id":1,"rtsp":"HOST:PORT"}
//	relay -> mediator  {"v":1,"type":"welcome","id":1,"re":1,"node":"n1","willing":true}
//	mediator -> relay  {"v":1,"type":"resolve","id":2,"stream":URL,"mode":"join"|"after_loss"|"redirect","exclude":[ADDR...]}
//	relay -> mediator  {"v":1,"type":"resolved","re":2,"upstream":{"url":...,"addr":...,"node":...}}
//	mediator -> relay  {"v":1,"type":"active","stream":URL,"upstream":{...}}  (no reply)
//	mediator -> relay  {"v":1,"type":"inactive","stream":URL}               (no reply)
//	mediator -> relay  {"v":1,"type":"stats","streams":[{...}]}              (no reply, every second)
//	relay -> mediator  {"v":1,"type":"switch","stream":URL,"upstream":{...}} (push: make-before-break)
//	either way         {"v":1,"type":"error","re":N,"code":CODE,"message":TEXT}
//
// A resolve in mode after_loss names in exclude the upstream that failed;
// one in mode join excludes nothing. An error with re answers that
// message: a request (a resolve that found nothing, a refused hello), a
// bad line that had an id, or an active the relay refused (nobody waits
// for that one: the mediator's Client hands it to Pushes). With re 0 it
// answers a line without an id, or says why the relay closes (too many
// control clients). A line of another version is answered with an error
// (code version) and the connection closed, as is a line over MaxLine.
//
// The relay keeps a stream it resolved only until the mediator says
// active (its upstream plays) or inactive (it never played, or stopped),
// or until its own timeout; it declares to ocm-server only what plays. A
// mediator's streams are left when its connection closes. The RTSP
// address in hello is the relay's for good once said (unless ocm-relay
// has its own --rtsp): a hello with another one is answered with an error.
// The relay bounds its control clients, streams and resolves in progress,
// and answers what is over a bound with an error (code busy) naming it.
package control

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/ocm-overlay/ocm/internal/wire"
)

// Version is the control link's protocol version. (The flat messages of
// before had no version: a peer still speaking them is told ErrVersion.)
const Version = 1

// MaxLine bounds one message, without its "\n": a stats message lists
// every stream relayed.
const MaxLine = 256 << 10

// WriteTimeout bounds one write: the peer is on the same host.
const WriteTimeout = 5 * time.Second

// Link is the control link's message set on wire's codec.
var Link = &wire.Link{Name: "control", Version: Version, MaxLine: MaxLine, WriteTimeout: WriteTimeout, New: newBody}

// Message types, the envelope's "type". The arrow says who sends it.
const (
	TypeHello    = "hello"        // mediator -> relay, answered by welcome or error
	TypeWelcome  = "welcome"      // relay -> mediator
	TypeResolve  = "resolve"      // mediator -> relay, answered by resolved or error
	TypeResolved = "resolved"     // relay -> mediator
	TypeActive   = "active"       // mediator -> relay, not answered (an error if refused)
	TypeInactive = "inactive"     // mediator -> relay, not answered
	TypeStats    = "stats"        // mediator -> relay, not answered
	TypeSwitch   = "switch"       // relay -> mediator, pushed
	TypeError    = wire.TypeError // either way: a *wire.Error
)

// Modes of a resolve: why the mediator asks.
const (
	// ModeJoin: a first resolve (or one after a loss that excludes
	// nothing any more); the relay joins the tree under the parent it
	// picks and keeps the stream until active or inactive. No exclude.
	ModeJoin = "join"
	// ModeAfterLoss: the upstream the mediator played from failed; the
	// exclude list (required) names what failed. Under the reconnect and
	// gradual policies the relay first waits for the server's reconnect.
	ModeAfterLoss = "after_loss"
	// ModeRedirect: the light client only wants an address to send a
	// player to (none of the excluded ones); nothing is joined or kept.
	ModeRedirect = "redirect"
)

// Error codes of the control link, beside wire's (CodeBadRequest,
// CodeUnknownType, CodeVersion, CodeLineTooLong, CodeUnexpected).
const (
	CodeBusy       = "busy"        // over a bound (clients, streams, resolves); the message names the flag
	CodeRefused    = "refused"     // a hello's address or an active the relay does not take
	CodeNoUpstream = "no_upstream" // a resolve found no parent
	// CodeNoRoom: a resolve found every parent offered without room (full
	// by the time of the join, or none free) for ocm-relay's
	// --join-attempts rounds or --join-wait; the message says which.
	CodeNoRoom = "no_room"
)

// Conn is one control connection: a wire.Conn of Link.
type Conn = wire.Conn

// NewConn wraps nc for the control link.
func NewConn(nc net.Conn) *Conn { return Link.NewConn(nc) }

// Upstream names where a stream is pulled from.
type Upstream struct {
	URL  string `json:"url"`
	Addr string `json:"addr"`
	Node string `json:"node,omitempty"`
}

// StreamStats is what the mediator knows of one relayed stream.
type StreamStats struct {
	Stream       string  `json:"stream"`
	Upstream     string  `json:"upstream,omitempty"`
	Readers      int     `json:"readers"`       // players and relays reading it here
	RelayReaders int     `json:"relay_readers"` // of which downstream relays
	PacketsIn    uint64  `json:"packets_in"`
	Lost         uint64  `json:"lost"`
	BitrateBPS   float64 `json:"bitrate_bps"`
}

// Hello is the mediator's first message: the RTSP address it listens on
// (empty: the relay has its own --rtsp).
type Hello struct {
	RTSP string `json:"rtsp,omitempty"`
}

// Welcome answers Hello: the relay's node id and whether it relays to
// others (false on a passive host: the mediator refuses relays).
type Welcome struct {
	Node    string `json:"node,omitempty"`
	Willing bool   `json:"willing"`
}

// Resolve asks where to pull a stream from, and says why (Mode*).
type Resolve struct {
	Stream  string   `json:"stream"`
	Mode    string   `json:"mode"`
	Exclude []string `json:"exclude,omitempty"` // upstream addresses that failed recently
}

// Resolved answers Resolve.
type Resolved struct {
	Upstream Upstream `json:"upstream"`
}

// Active says the stream plays from Upstream.
type Active struct {
	Stream   string   `json:"stream"`
	Upstream Upstream `json:"upstream"`
}

// Inactive says the stream is no longer relayed here (or never played).
type Inactive struct {
	Stream string `json:"stream"`
}

// Stats is the mediator's view of every stream it relays.
type Stats struct {
	Streams []StreamStats `json:"streams,omitempty"`
}

// Switch tells the mediator to move a stream to Upstream,
// make-before-break.
type Switch struct {
	Stream   string   `json:"stream"`
	Upstream Upstream `json:"upstream"`
}

func (*Hello) Type() string    { return TypeHello }
func (*Welcome) Type() string  { return TypeWelcome }
func (*Resolve) Type() string  { return TypeResolve }
func (*Resolved) Type() string { return TypeResolved }
func (*Active) Type() string   { return TypeActive }
func (*Inactive) Type() string { return TypeInactive }
func (*Stats) Type() string    { return TypeStats }
func (*Switch) Type() string   { return TypeSwitch }

// newBody returns an empty body for a type, nil if the type is unknown.
func newBody(typ string) wire.Body {
	switch typ {
	case TypeHello:
		return &Hello{}
	case TypeWelcome:
		return &Welcome{}
	case TypeResolve:
		return &Resolve{}
	case TypeResolved:
		return &Resolved{}
	case TypeActive:
		return &Active{}
	case TypeInactive:
		return &Inactive{}
	case TypeStats:
		return &Stats{}
	case TypeSwitch:
		return &Switch{}
	case TypeError:
		return &wire.Error{}
	}
	return nil
}

// checkText validates an optional printable string of bounded length.
func checkText(field, s string) error {
	if s == "" {
		return nil
	}
	return wire.CheckStream(field, s)
}

// Validate checks an upstream: a URL is required, the rest optional.
func (u *Upstream) Validate(field string) error {
	if err := wire.CheckStream(field+".url", u.URL); err != nil {
		return err
	}
	if err := checkText(field+".addr", u.Addr); err != nil {
		return err
	}
	return checkText(field+".node", u.Node)
}

// Validate implements wire.Body. The address itself is checked by the
// relay, which names it in its refusal.
func (h *Hello) Validate() error { return checkText("rtsp", h.RTSP) }

// Validate implements wire.Body.
func (w *Welcome) Validate() error { return checkText("node", w.Node) }

// Validate implements wire.Body.
func (r *Resolve) Validate() error {
	if err := wire.CheckStream("stream", r.Stream); err != nil {
		return err
	}
	switch r.Mode {
	case ModeJoin, ModeAfterLoss, ModeRedirect:
	case "":
		return wire.Invalid("mode is empty (want %s, %s or %s)", ModeJoin, ModeAfterLoss, ModeRedirect)
	default:
		return wire.Invalid("mode %.64q is not %s, %s or %s", r.Mode, ModeJoin, ModeAfterLoss, ModeRedirect)
	}
	switch {
	case r.Mode == ModeAfterLoss && len(r.Exclude) == 0:
		return wire.Invalid("mode %s without exclude: name the upstream that failed", ModeAfterLoss)
	case r.Mode == ModeJoin && len(r.Exclude) > 0:
		return wire.Invalid("exclude with mode %s: a resolve that excludes is %s or %s", ModeJoin, ModeAfterLoss, ModeRedirect)
	}
	if err := wire.CheckLen("exclude", len(r.Exclude)); err != nil {
		return err
	}
	for i, a := range r.Exclude {
		if err := wire.CheckStream(fmt.Sprintf("exclude[%d]", i), a); err != nil {
			return err
		}
	}
	return nil
}

// Validate implements wire.Body.
func (r *Resolved) Validate() error { return r.Upstream.Validate("upstream") }

// Validate implements wire.Body.
func (a *Active) Validate() error {
	if err := wire.CheckStream("stream", a.Stream); err != nil {
		return err
	}
	return a.Upstream.Validate("upstream")
}

// Validate implements wire.Body.
func (i *Inactive) Validate() error { return wire.CheckStream("stream", i.Stream) }

// Validate implements wire.Body.
func (s *Stats) Validate() error {
	for i, st := range s.Streams {
		f := func(n string) string { return fmt.Sprintf("streams[%d].%s", i, n) }
		if err := wire.CheckStream(f("stream"), st.Stream); err != nil {
			return err
		}
		if err := checkText(f("upstream"), st.Upstream); err != nil {
			return err
		}
		for _, e := range []error{wire.CheckCount(f("readers"), st.Readers), wire.CheckCount(f("relay_readers"), st.RelayReaders)} {
			if e != nil {
				return e
			}
		}
		if !(st.BitrateBPS >= 0) {
			return wire.Invalid("%s %v is negative", f("bitrate_bps"), st.BitrateBPS)
		}
	}
	return nil
}

// Validate implements wire.Body.
func (s *Switch) Validate() error {
	if err := wire.CheckStream("stream", s.Stream); err != nil {
		return err
	}
	return s.Upstream.Validate("upstream")
}

// Client is the mediator's side of the link: the typed calls on one
// wire.Client (correlation, deadlines and pushes are wire's).
type Client struct {
	wc *wire.Client
}

// NewClient starts reading c (opts as for wire.NewClient). Say Hello
// first.
func NewClient(c *Conn, opts ...wire.ClientOption) *Client {
	return &Client{wire.NewClient(c, opts...)}
}

// Pushes delivers what the relay sends unasked: *Switch, *wire.Error
// (re 0, or answering a request that gave up), a late *Welcome. It is
// closed once the connection has ended.
func (cl *Client) Pushes() <-chan wire.Msg { return cl.wc.Pushes() }

// Done is closed when the connection has ended.
func (cl *Client) Done() <-chan struct{} { return cl.wc.Done() }

// Close closes the connection and waits for the client's goroutines.
func (cl *Client) Close() error { return cl.wc.Close() }

// Request sends any body and waits for its answer (see wire.Client).
func (cl *Client) Request(ctx context.Context, body wire.Body) (wire.Msg, error) {
	return cl.wc.Request(ctx, body)
}

func (cl *Client) send(body wire.Body) error {
	_, err := cl.wc.Conn().Send(body)
	return err
}

// Hello says the mediator's RTSP address and returns the relay's welcome.
// A refusal is a *wire.Error (code refused) naming the address.
func (cl *Client) Hello(ctx context.Context, rtsp string) (*Welcome, error) {
	return wire.Expect[*Welcome](ctx, cl.wc, &Hello{RTSP: rtsp})
}

// Resolve asks where to pull a stream from. A relay that found nothing
// answers a *wire.Error (code no_upstream or busy).
func (cl *Client) Resolve(ctx context.Context, req *Resolve) (Upstream, error) {
	r, err := wire.Expect[*Resolved](ctx, cl.wc, req)
	if err != nil {
		return Upstream{}, err
	}
	return r.Upstream, nil
}

// Active says a stream plays from up (not answered; a refusal comes as a
// push).
func (cl *Client) Active(stream string, up Upstream) error {
	return cl.send(&Active{Stream: stream, Upstream: up})
}

// Inactive says a stream is no longer relayed here.
func (cl *Client) Inactive(stream string) error {
	return cl.send(&Inactive{Stream: stream})
}

// Stats sends the mediator's stream statistics.
func (cl *Client) Stats(streams []StreamStats) error {
	return cl.send(&Stats{Streams: streams})
}
