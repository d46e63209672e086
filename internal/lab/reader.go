package lab

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/conn"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	"github.com/pion/rtp"
)

// Reader is a lean RTSP player: TCP with gortsplib's message codec
// (pkg/conn) and nothing else, one goroutine that reads interleaved frames
// and parses RTP. A full client (gortsplib.Client) per reader costs enough
// CPU and scheduling that, with hundreds of them on two cores, a
// benchmark's own delay swamps the relay's.
type Reader struct {
	nc      net.Conn
	timeout time.Duration
	done    chan struct{}
	once    sync.Once
	err     error // why reading stopped, valid after done
	packets atomic.Int64
	lost    atomic.Int64
}

// ReaderOptions are a Reader's callbacks and limits.
type ReaderOptions struct {
	// OnPacket is called with every RTP packet, on the reader's goroutine;
	// the packet is reused after it returns.
	OnPacket func(*rtp.Packet)
	// ReadTimeout ends the session after that long without data (0: never).
	ReadTimeout time.Duration
}

// ErrSessionEnded is why a Reader stopped when the server ended it cleanly.
var ErrSessionEnded = errors.New("session ended")

// Dial plays url with every media over TCP.
func Dial(url string, o ReaderOptions) (*Reader, error) {
	u, err := base.ParseURL(url)
	if err != nil {
		return nil, err
	}
	nc, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return nil, err
	}
	r := &Reader{nc: nc, timeout: o.ReadTimeout, done: make(chan struct{})}
	if err := r.start(u, o.OnPacket); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return r, nil
}

func (r *Reader) start(u *base.URL, onPacket func(*rtp.Packet)) error {
	c := conn.NewConn(r.nc)
	cseq, session := 0, ""
	do := func(method base.Method, u *base.URL, h base.Header) (*base.Response, error) {
		cseq++
		h["CSeq"] = base.HeaderValue{strconv.Itoa(cseq)}
		h["User-Agent"] = base.HeaderValue{"ocm-lab"}
		if session != "" {
			h["Session"] = base.HeaderValue{session}
		}
		_ = r.nc.SetDeadline(time.Now().Add(5 * time.Second))
		if err := c.WriteRequest(&base.Request{Method: method, URL: u, Header: h}); err != nil {
			return nil, err
		}
		res, err := c.ReadResponse()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", method, err)
		}
		if res.StatusCode != base.StatusOK {
			return nil, fmt.Errorf("%s: %d %s", method, res.StatusCode, res.StatusMessage)
		}
		if s, ok := res.Header["Session"]; ok && session == "" && len(s) > 0 {
			session = strings.Split(s[0], ";")[0]
		}
		return res, nil
	}

	res, err := do(base.Describe, u, base.Header{"Accept": base.HeaderValue{"application/sdp"}})
	if err != nil {
		return err
	}
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(res.Body); err != nil {
		return fmt.Errorf("SDP: %w", err)
	}
	var desc description.Session
	if err := desc.Unmarshal(&sd); err != nil {
		return fmt.Errorf("SDP: %w", err)
	}
	baseURL := u
	if cb, ok := res.Header["Content-Base"]; ok && len(cb) > 0 {
		if bu, err := base.ParseURL(cb[0]); err == nil {
			baseURL = bu
		}
	}
	for i, medi := range desc.Medias {
		mu, err := medi.URL(baseURL)
		if err != nil {
			return err
		}
		th := fmt.Sprintf("RTP/AVP/TCP;unicast;interleaved=%d-%d", 2*i, 2*i+1)
		if _, err := do(base.Setup, mu, base.Header{"Transport": base.HeaderValue{th}}); err != nil {
			return err
		}
	}
	if _, err := do(base.Play, baseURL, base.Header{}); err != nil {
		return err
	}
	_ = r.nc.SetDeadline(time.Time{})
	go r.read(c, onPacket)
	return nil
}

func (r *Reader) read(c *conn.Conn, onPacket func(*rtp.Packet)) {
	defer close(r.done)
	var pkt rtp.Packet
	var next [256]int32 // per channel: the sequence number expected, -1 before the first
	for i := range next {
		next[i] = -1
	}
	for {
		if r.timeout > 0 {
			_ = r.nc.SetReadDeadline(time.Now().Add(r.timeout))
		}
		msg, err := c.Read()
		if err != nil {
			r.err = err
			if errors.Is(err, net.ErrClosed) {
				r.err = ErrSessionEnded
			}
			return
		}
		fr, ok := msg.(*base.InterleavedFrame)
		if !ok || fr.Channel%2 != 0 {
			continue // an answer, or RTCP
		}
		if pkt.Unmarshal(fr.Payload) != nil {
			continue
		}
		ch := byte(fr.Channel)
		if want := next[ch]; want >= 0 {
			if gap := int16(pkt.SequenceNumber - uint16(want)); gap > 0 {
				r.lost.Add(int64(gap))
			}
		}
		next[ch] = int32(pkt.SequenceNumber + 1)
		r.packets.Add(1)
		if onPacket != nil {
			onPacket(&pkt)
		}
	}
}

// Packets counts the RTP packets read so far.
func (r *Reader) Packets() int64 { return r.packets.Load() }

// Lost counts the packets missing by sequence number so far (forward gaps).
func (r *Reader) Lost() int64 { return r.lost.Load() }

// Done is closed once the reader has stopped reading.
func (r *Reader) Done() <-chan struct{} { return r.done }

// Failed returns why the session ended, or nil while it plays.
func (r *Reader) Failed() error {
	select {
	case <-r.done:
		if r.err == nil {
			return ErrSessionEnded
		}
		return r.err
	default:
		return nil
	}
}

// Wait waits until the session ends and returns why.
func (r *Reader) Wait() error {
	<-r.done
	return r.Failed()
}

// Close ends the connection and waits for the reading goroutine, so what
// its callback fed can be read.
func (r *Reader) Close() {
	r.once.Do(func() { r.nc.Close() })
	<-r.done
}

// Arrival is one RTP packet as a Recorder saw it.
type Arrival struct {
	At     time.Time
	Seq    uint16
	Marker bool
}

// Recorder keeps the arrival time and sequence number of every packet
// (its OnPacket is a ReaderOptions.OnPacket).
type Recorder struct {
	mu  sync.Mutex
	arr []Arrival
}

// OnPacket records pkt.
func (r *Recorder) OnPacket(pkt *rtp.Packet) {
	now := time.Now()
	r.mu.Lock()
	r.arr = append(r.arr, Arrival{At: now, Seq: pkt.SequenceNumber, Marker: pkt.Marker})
	r.mu.Unlock()
}

// Arrivals returns a copy of what was recorded.
func (r *Recorder) Arrivals() []Arrival {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.arr)
}

// Last returns the latest arrival.
func (r *Recorder) Last() (Arrival, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.arr) == 0 {
		return Arrival{}, false
	}
	return r.arr[len(r.arr)-1], true
}
