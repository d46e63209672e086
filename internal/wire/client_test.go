package wire

import (
	"context"
	"errors"
	"testing"
	"time"
)

// fakeServer answers like ocm-server would, pushing a reconnect before
// every candidates answer.
func fakeServer(t *testing.T, c *Conn) {
	t.Helper()
	go func() {
		for {
			m, err := c.ReadMsg()
			if err != nil {
				return
			}
			switch b := m.Body.(type) {
			case *Hello:
				_ = c.Reply(m.ID, &Welcome{Node: b.Node, Recovery: RecoveryRepair, ReportMs: 10, HeartbeatMs: 2})
			case *GetCandidates:
				_, _ = c.Send(&Reconnect{Stream: b.Stream, Reason: ReasonParentFailed})
				_ = c.Reply(m.ID, &Candidates{Stream: b.Stream, Candidates: []Candidate{{Node: OriginID, RTSP: "ms:554"}}})
			case *Joined:
				if b.Parent == "bad" {
					_ = c.Reply(m.ID, &Error{Code: CodeCycle, Message: "no"})
				} else {
					_ = c.Reply(m.ID, &Ack{Level: 1})
				}
			case *Left:
				_ = c.Reply(m.ID, &Ack{})
			case *Heartbeat:
				_ = c.Reply(m.ID, &Heartbeat{})
			case *Report:
				_, _ = c.Send(&Drain{Reason: "bye"})
			}
		}
	}()
}

func TestClient(t *testing.T) {
	srv, peer := pair(t)
	fakeServer(t, srv)
	cl := NewClient(NewConn(peer))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	w, err := cl.Hello(ctx, &Hello{Node: "n1"})
	if err != nil || w.Node != "n1" || w.Heartbeat() != 2*time.Millisecond {
		t.Fatalf("hello: %+v %v", w, err)
	}
	cs, err := cl.Candidates(ctx, "rtsp://ms:554/live", nil)
	if err != nil || len(cs) != 1 || cs[0].Node != OriginID {
		t.Fatalf("candidates: %+v %v", cs, err)
	}
	if m := <-cl.Pushes(); m.Type != TypeReconnect {
		t.Fatalf("push %+v", m)
	}
	if lvl, err := cl.Join(ctx, "rtsp://ms:554/live", OriginID); err != nil || lvl != 1 {
		t.Fatalf("join: %d %v", lvl, err)
	}
	_, err = cl.Join(ctx, "rtsp://ms:554/live", "bad")
	var werr *Error
	if !errors.As(err, &werr) || werr.Code != CodeCycle {
		t.Fatalf("bad join: %v", err)
	}
	if err := cl.Leave(ctx, "rtsp://ms:554/live"); err != nil {
		t.Fatal(err)
	}
	if err := cl.Heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if err := cl.Report(&Report{CPU: 0.1}); err != nil {
		t.Fatal(err)
	}
	if m := <-cl.Pushes(); m.Type != TypeDrain {
		t.Fatalf("push %+v", m)
	}

	// The server goes away: pending and later requests fail with ErrClosed.
	srv.Close()
	<-cl.Done()
	if _, ok := <-cl.Pushes(); ok {
		t.Fatal("pushes not closed")
	}
	if err := cl.Heartbeat(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("after close: %v", err)
	}
}

// Close returns even when nobody reads the pushes.
func TestClientCloseWithUnreadPushes(t *testing.T) {
	srv, peer := pair(t)
	cl := NewClient(NewConn(peer))
	for i := 0; i < 40; i++ { // more than the push buffer
		if _, err := srv.Send(&Drain{}); err != nil {
			t.Fatal(err)
		}
	}
	// A request is answered even though the pushes pile up unread.
	go func() {
		m, err := srv.ReadMsg()
		if err == nil {
			_ = srv.Reply(m.ID, &Heartbeat{})
		}
	}()
	if err := cl.Heartbeat(context.Background()); err != nil {
		t.Fatal(err)
	}
	cl.Close()
	if cl.Err() == nil {
		t.Fatal("no error after Close")
	}
}

func TestClientRequestContext(t *testing.T) {
	_, peer := pair(t) // nobody answers
	cl := NewClient(NewConn(peer))
	defer cl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := cl.Heartbeat(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v", err)
	}
}

// TestClientSkipsBadLines: a line the client cannot use is skipped, told
// to OnSkip with what was wrong, and the request still gets its answer.
func TestClientSkipsBadLines(t *testing.T) {
	srv, peer := pair(t)
	skipped := make(chan error, 4)
	cl := NewClient(NewConn(peer), OnSkip(func(err error) { skipped <- err }))
	defer cl.Close()
	go func() {
		m, err := srv.ReadMsg()
		if err != nil {
			return
		}
		_, _ = srv.nc.Write([]byte("not json\n" + `{"v":1,"type":"frobnicate"}` + "\n"))
		_ = srv.Reply(m.ID, &Heartbeat{})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.Heartbeat(ctx); err != nil {
		t.Fatalf("heartbeat after bad lines: %v", err)
	}
	for _, want := range []error{ErrMalformed, ErrUnknownType} {
		if err := <-skipped; !errors.Is(err, want) {
			t.Errorf("skipped %v, want %v", err, want)
		}
	}
}
