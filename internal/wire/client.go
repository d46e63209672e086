package wire

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// ErrClosed is returned by Client calls once the connection has ended;
// Client.Err tells why.
var ErrClosed = errors.New("ocm connection closed")

// Client is the requesting side of a connection of any Link (the relay
// on the Server link, the mediator on the control link): one reader
// goroutine routes each reply to the request waiting for it, and
// everything else the peer pushes (reconnect, drain, an error with re 0) to Pushes, in
// order, with the answers nobody waits for (an error answering a report,
// a reply that came after its request gave up). Pushes are queued without bound, so a consumer busy with a
// request never stalls the replies. Requests may be made from any
// goroutine.
type Client struct {
	conn      *Conn
	pushes    chan Msg
	notify    chan struct{} // wakes the forwarder
	done      chan struct{} // reader stopped
	fwdDone   chan struct{} // forwarder stopped
	closing   chan struct{}
	closeOnce sync.Once

	onSkip func(error) // a line skipped as bad input; nil: silently

	mu      sync.Mutex
	waiting map[uint64]chan Msg
	queue   []Msg // pushes not yet taken
	ended   bool
	err     error
}

// A ClientOption configures NewClient.
type ClientOption func(*Client)

// OnSkip has f called, from the client's reader goroutine, with the error
// of each line the client skips as bad input (IsBadMessage: malformed,
// invalid, of an unknown type), so that it can be logged.
func OnSkip(f func(error)) ClientOption { return func(cl *Client) { cl.onSkip = f } }

// NewClient starts reading c. Say Hello first.
func NewClient(c *Conn, opts ...ClientOption) *Client {
	cl := &Client{conn: c, pushes: make(chan Msg), notify: make(chan struct{}, 1),
		done: make(chan struct{}), fwdDone: make(chan struct{}), closing: make(chan struct{}),
		waiting: map[uint64]chan Msg{}}
	for _, o := range opts {
		o(cl)
	}
	go cl.read()
	go cl.forward()
	return cl
}

// Conn returns the underlying connection.
func (cl *Client) Conn() *Conn { return cl.conn }

// Pushes delivers the messages that answer no request. It is closed once
// the connection has ended and every push was delivered (or on Close).
func (cl *Client) Pushes() <-chan Msg { return cl.pushes }

// Done is closed when the connection has ended.
func (cl *Client) Done() <-chan struct{} { return cl.done }

// Err returns why the connection ended (nil while it is up).
func (cl *Client) Err() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.err
}

// Close closes the connection and waits for the client's goroutines.
func (cl *Client) Close() error {
	cl.closeOnce.Do(func() { close(cl.closing) })
	err := cl.conn.Close()
	<-cl.done
	<-cl.fwdDone
	return err
}

func (cl *Client) wake() {
	select {
	case cl.notify <- struct{}{}:
	default:
	}
}

func (cl *Client) read() {
	var err error
	for {
		var m Msg
		m, err = cl.conn.ReadMsg()
		if err != nil {
			if IsBadMessage(err) {
				if cl.onSkip != nil {
					cl.onSkip(err)
				}
				continue // a newer or broken peer: skip the line
			}
			break
		}
		cl.mu.Lock()
		if ch := cl.waiting[m.Re]; m.Re != 0 && ch != nil {
			delete(cl.waiting, m.Re)
			ch <- m // buffered
		} else {
			cl.queue = append(cl.queue, m)
		}
		cl.mu.Unlock()
		cl.wake()
	}
	cl.mu.Lock()
	cl.err, cl.ended = err, true
	for id, ch := range cl.waiting {
		close(ch)
		delete(cl.waiting, id)
	}
	cl.mu.Unlock()
	cl.wake()
	close(cl.done)
}

// forward moves queued pushes to the Pushes channel.
func (cl *Client) forward() {
	defer close(cl.fwdDone)
	defer close(cl.pushes)
	for {
		cl.mu.Lock()
		if len(cl.queue) > 0 {
			m := cl.queue[0]
			cl.queue = cl.queue[1:]
			cl.mu.Unlock()
			select {
			case cl.pushes <- m:
			case <-cl.closing:
				return
			}
			continue
		}
		ended := cl.ended
		cl.mu.Unlock()
		if ended {
			return
		}
		select {
		case <-cl.notify:
		case <-cl.closing:
			return
		}
	}
}

// Request sends body and waits for the answer. An error answer is
// returned as a *Error (test the code with errors.As).
func (cl *Client) Request(ctx context.Context, body Body) (Msg, error) {
	ch := make(chan Msg, 1)
	cl.mu.Lock()
	if cl.ended {
		cl.mu.Unlock()
		return Msg{}, fmt.Errorf("%w: %v", ErrClosed, cl.err)
	}
	id := cl.conn.nextID.Add(1)
	cl.waiting[id] = ch
	cl.mu.Unlock()
	forget := func() {
		cl.mu.Lock()
		delete(cl.waiting, id)
		cl.mu.Unlock()
	}
	if err := cl.conn.WriteMsg(Msg{ID: id, Body: body}); err != nil {
		forget()
		return Msg{}, err
	}
	select {
	case m, ok := <-ch:
		if !ok {
			return Msg{}, fmt.Errorf("%w: %v", ErrClosed, cl.Err())
		}
		if e, isErr := m.Body.(*Error); isErr {
			return m, e
		}
		return m, nil
	case <-ctx.Done():
		forget()
		return Msg{}, ctx.Err()
	}
}

// Expect makes a request and checks the answer's type: the typed calls
// of every link are built on it.
func Expect[T Body](ctx context.Context, cl *Client, body Body) (T, error) {
	var zero T
	m, err := cl.Request(ctx, body)
	if err != nil {
		return zero, err
	}
	b, ok := m.Body.(T)
	if !ok {
		return zero, fmt.Errorf("%w: %s answered by %s", ErrInvalid, body.Type(), m.Type)
	}
	return b, nil
}

// Hello says hello and returns the welcome. A refused token is
// ErrBadToken, a version the server does not speak ErrVersion (both also
// unwrap to the *Error received).
func (cl *Client) Hello(ctx context.Context, h *Hello) (*Welcome, error) {
	w, err := Expect[*Welcome](ctx, cl, h)
	var e *Error
	if errors.As(err, &e) {
		switch e.Code {
		case CodeUnauthorized:
			return nil, fmt.Errorf("%w: %w", ErrBadToken, e)
		case CodeVersion:
			return nil, fmt.Errorf("%w: %w", ErrVersion, e)
		}
	}
	return w, err
}

// Candidates asks for parents for a stream.
func (cl *Client) Candidates(ctx context.Context, stream string, exclude []string) ([]Candidate, error) {
	c, err := Expect[*Candidates](ctx, cl, &GetCandidates{Stream: stream, Exclude: exclude})
	if err != nil {
		return nil, err
	}
	return c.Candidates, nil
}

// Join reports the parent taken for a stream and returns the level the
// server computed. On error (a *Error with a Code*), pick another parent.
func (cl *Client) Join(ctx context.Context, stream, parent string) (int, error) {
	return cl.JoinWith(ctx, &Joined{Stream: stream, Parent: parent})
}

// JoinWith is Join with the whole joined: the RTT to the parent the
// relay measured and whether it asks to displace the parent's farthest
// child (Joined.RTTMs, Joined.Displace).
func (cl *Client) JoinWith(ctx context.Context, j *Joined) (int, error) {
	a, err := Expect[*Ack](ctx, cl, j)
	if err != nil {
		return 0, err
	}
	return a.Level, nil
}

// Leave reports that the relay no longer receives a stream. If the relay
// still has children on it, the server answers once they have switched
// to their new parents or after Welcome.Handover: give ctx a little more
// than that, and keep serving the children until Leave returns.
func (cl *Client) Leave(ctx context.Context, stream string) error {
	_, err := Expect[*Ack](ctx, cl, &Left{Stream: stream})
	return err
}

// Heartbeat sends a heartbeat and waits for its echo.
func (cl *Client) Heartbeat(ctx context.Context) error {
	_, err := Expect[*Heartbeat](ctx, cl, &Heartbeat{})
	return err
}

// Report sends a report (not answered).
func (cl *Client) Report(r *Report) error {
	_, err := cl.conn.Send(r)
	return err
}
