package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/conn"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/sdp"
	"github.com/pion/rtp"
)

// leanReader is the latency case's player: RTSP over TCP with gortsplib's
// message codec (pkg/conn) and nothing else, one goroutine that reads
// interleaved frames and parses RTP. A full client (gortsplib.Client) per
// reader costs this process enough CPU and scheduling that, with 200 of
// them on two cores, its own delay swamps the relay's; the twin reader on
// the origin shows what is left.
type leanReader struct {
	nc   net.Conn
	done chan struct{}
	once sync.Once
}

// dialLeanReader plays url with every media over TCP and calls onPacket
// for each RTP packet, on the reader's goroutine.
func dialLeanReader(url string, onPacket func(*rtp.Packet)) (*leanReader, error) {
	u, err := base.ParseURL(url)
	if err != nil {
		return nil, err
	}
	nc, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		return nil, err
	}
	r := &leanReader{nc: nc, done: make(chan struct{})}
	if err := r.start(u, onPacket); err != nil {
		nc.Close()
		return nil, fmt.Errorf("%s: %w", url, err)
	}
	return r, nil
}

func (r *leanReader) start(u *base.URL, onPacket func(*rtp.Packet)) error {
	c := conn.NewConn(r.nc)
	cseq, session := 0, ""
	do := func(method base.Method, u *base.URL, h base.Header) (*base.Response, error) {
		cseq++
		h["CSeq"] = base.HeaderValue{strconv.Itoa(cseq)}
		h["User-Agent"] = base.HeaderValue{"ocm-bench"}
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

func (r *leanReader) read(c *conn.Conn, onPacket func(*rtp.Packet)) {
	defer close(r.done)
	var pkt rtp.Packet
	for {
		msg, err := c.Read()
		if err != nil {
			return
		}
		fr, ok := msg.(*base.InterleavedFrame)
		if !ok || fr.Channel%2 != 0 {
			continue // an answer, or RTCP
		}
		if pkt.Unmarshal(fr.Payload) == nil {
			onPacket(&pkt)
		}
	}
}

// Close ends the connection and waits for the reading goroutine, so the
// recorder it feeds can be read.
func (r *leanReader) Close() {
	r.once.Do(func() { r.nc.Close() })
	<-r.done
}
