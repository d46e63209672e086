// Package control is the local protocol between rtsp-mediator and the
// ocm-relay on the same host: newline-delimited JSON over TCP (loopback by
// default). The mediator asks where to pull a stream from and says what it
// does with it; the relay pushes switches when the tree changes.
//
//	mediator -> relay  {"op":"hello","id":1,"rtsp":"HOST:PORT"}        reply {"re":1,"willing":true,"node":"n1"}
//	mediator -> relay  {"op":"resolve","id":2,"stream":URL,"exclude":[ADDR...],"redirect":false}
//	relay -> mediator  {"re":2,"upstream":{"url":...,"addr":...,"node":...}} or {"re":2,"error":"..."}
//	mediator -> relay  {"op":"active","stream":URL,"upstream":{...}}     (no reply)
//	mediator -> relay  {"op":"inactive","stream":URL}                  (no reply)
//	mediator -> relay  {"op":"stats","streams":[{...}]}                 (no reply, every second)
//	relay -> mediator  {"op":"switch","stream":URL,"upstream":{...}}    (push: make-before-break)
//	relay -> mediator  {"error":"..."}                                 (a line or an op refused, no id to answer)
//
// The relay keeps a stream it resolved only until the mediator says
// active (its upstream plays) or inactive (it never played, or stopped),
// or until its own timeout; it declares to ocm-server only what plays. A
// mediator's streams are left when its connection closes. The RTSP
// address in hello is the relay's for good once said (unless ocm-relay
// has its own --rtsp): a hello with another one is answered with an error.
// The relay bounds its control clients, streams and resolves in progress,
// and answers what is over a bound with an error naming it.
package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// MaxLine bounds one message.
const MaxLine = 256 << 10

// Operations.
const (
	OpHello    = "hello"
	OpResolve  = "resolve"
	OpActive   = "active"
	OpInactive = "inactive"
	OpStats    = "stats"
	OpSwitch   = "switch"
)

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

// Msg is every message, in both directions; fields unused by an op stay
// empty.
type Msg struct {
	Op       string        `json:"op,omitempty"`
	ID       uint64        `json:"id,omitempty"`
	Re       uint64        `json:"re,omitempty"`
	Stream   string        `json:"stream,omitempty"`
	Exclude  []string      `json:"exclude,omitempty"`
	Redirect bool          `json:"redirect,omitempty"`
	Upstream *Upstream     `json:"upstream,omitempty"`
	Streams  []StreamStats `json:"streams,omitempty"`
	RTSP     string        `json:"rtsp,omitempty"`
	Node     string        `json:"node,omitempty"`
	Willing  *bool         `json:"willing,omitempty"`
	Error    string        `json:"error,omitempty"`
}

// Conn reads and writes Msgs on one connection. Write is safe for
// concurrent use; Read is for one goroutine.
type Conn struct {
	nc  net.Conn
	sc  *bufio.Scanner
	wmu sync.Mutex
}

// NewConn wraps nc.
func NewConn(nc net.Conn) *Conn {
	sc := bufio.NewScanner(nc)
	sc.Buffer(make([]byte, 4096), MaxLine+1) // the line and its newline
	return &Conn{nc: nc, sc: sc}
}

// ErrBadMessage wraps a line that is not a valid message; the connection
// is still usable.
var ErrBadMessage = errors.New("bad control message")

// Read returns the next message. A line that does not decode is returned
// as an ErrBadMessage, after which reading can go on.
func (c *Conn) Read() (Msg, error) {
	for c.sc.Scan() {
		line := c.sc.Bytes()
		if len(line) == 0 {
			continue
		}
		var m Msg
		if err := json.Unmarshal(line, &m); err != nil {
			return Msg{}, fmt.Errorf("%w: %v: %.80q", ErrBadMessage, err, line)
		}
		return m, nil
	}
	if err := c.sc.Err(); err != nil {
		return Msg{}, err
	}
	return Msg{}, net.ErrClosed
}

// ErrTooLong is returned for a message over MaxLine: the peer would
// drop the connection on reading it.
var ErrTooLong = errors.New("control message over the line limit")

// Write sends m as one line.
func (c *Conn) Write(m Msg) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > MaxLine {
		return fmt.Errorf("%w: %s of %d bytes, limit %d", ErrTooLong, m.Op, len(b), MaxLine)
	}
	b = append(b, '\n')
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err = c.nc.Write(b)
	return err
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// RemoteAddr is the peer's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }
