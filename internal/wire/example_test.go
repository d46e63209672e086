package wire_test

import (
	"context"
	"errors"
	"log"
	"net"
	"time"

	"github.com/ocm-overlay/ocm/internal/wire"
)

// A relay's session: hello, pick a parent, join, follow the server's
// pushes, heartbeat.
func Example_relay() {
	c, err := wire.Dial("tcp", "ocm-server.example:7070", 5*time.Second)
	if err != nil {
		log.Fatal(err)
	}
	cl := wire.NewClient(c)
	defer cl.Close()
	ctx := context.Background()
	const stream = "rtsp://ms.example:554/live"

	// The hello names the addresses this host's mediator and probe
	// responder bound (port 0 in tests and scripts: what was bound is
	// what the hello names).
	rtspLn, err := net.Listen("tcp", "127.0.0.1:0") // the mediator's, in real life
	if err != nil {
		log.Fatal(err)
	}
	defer rtspLn.Close()
	probeConn, err := net.ListenPacket("udp", "127.0.0.1:0") // the probe responder's
	if err != nil {
		log.Fatal(err)
	}
	defer probeConn.Close()
	rtspAddr, probeAddr := rtspLn.Addr().String(), probeConn.LocalAddr().String()
	w, err := cl.Hello(ctx, &wire.Hello{Node: "viewer-7", RTSP: rtspAddr, Probe: probeAddr,
		Willing: true, Capacity: 4, Cores: 8, Token: "s3cret"})
	if err != nil {
		log.Fatal(err) // a *wire.Error with CodeUnauthorized for a bad token
	}
	// Stop before the server's 3 missed intervals, with margin.
	c.SetReadTimeout(4 * w.Heartbeat())

	cands, err := cl.Candidates(ctx, stream, nil)
	if err != nil {
		log.Fatal(err)
	}
	for _, cand := range cands { // probe and score them first in real life
		_, err := cl.Join(ctx, stream, cand.Node)
		var werr *wire.Error
		if errors.As(err, &werr) {
			continue // full, cycle...: try the next one
		}
		if err != nil {
			log.Fatal(err)
		}
		break // now pull rtsp://cand.RTSP/live?ms.example:554
	}

	tick := time.NewTicker(w.Heartbeat())
	defer tick.Stop()
	for {
		select {
		case m, ok := <-cl.Pushes():
			if !ok {
				log.Fatal(cl.Err()) // reconnect with the streams in the hello
			}
			if rc, isRC := m.Body.(*wire.Reconnect); isRC {
				_ = rc // re-resolve rc.Stream (or switch to rc.Target)
			}
		case <-tick.C:
			if err := cl.Heartbeat(ctx); err != nil {
				log.Fatal(err)
			}
		}
	}
}
