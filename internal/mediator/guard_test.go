package mediator

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/base"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/ocm-overlay/ocm/internal/testutil"
)

// liveness bounds every wait in these tests: generous, never a timing
// assertion.
const liveness = 20 * time.Second

func dialT(t *testing.T, addr string) net.Conn {
	t.Helper()
	return testutil.Dial(t, addr, liveness)
}

// waitClosed waits until the mediator closes c.
func waitClosed(t *testing.T, c net.Conn, what string) {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(time.Now().Add(liveness))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s was still open after %s", what, liveness)
	}
	t.Logf("%s closed after %s", what, time.Since(start).Round(time.Millisecond))
}

// answersOptions reports whether a new connection to addr gets an answer.
func answersOptions(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, liveness)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(liveness))
	if _, err := io.WriteString(c, "OPTIONS rtsp://"+addr+"/ RTSP/1.0\r\nCSeq: 1\r\n\r\n"); err != nil {
		return false
	}
	buf := make([]byte, 12)
	n, _ := io.ReadFull(c, buf)
	return string(buf[:n]) == "RTSP/1.0 200"
}

// Connections beyond MaxConns are closed at once; a reader already playing
// is untouched, and a freed slot serves again. With and without the
// coalescing writer, which wraps connections differently.
func TestConnectionBound(t *testing.T) {
	for _, noCoalesce := range []bool{false, true} {
		t.Run(map[bool]string{false: "coalescing", true: "no-coalesce"}[noCoalesce], func(t *testing.T) {
			m := startMediator(t, func(m *Mediator) {
				m.TestSource = "test"
				m.MaxConns = 3
				m.RequestTimeout = time.Minute
				m.NoCoalesce = noCoalesce
			})
			r := startReader(t, "rtsp://"+m.Addr()+"/test") // one connection
			r.waitPackets(t, 20)
			silent := []net.Conn{dialT(t, m.Addr()), dialT(t, m.Addr())}
			// The bound is reached: the next connection is closed at once.
			waitClosed(t, dialT(t, m.Addr()), "a connection beyond the bound")
			r.waitPackets(t, 50)

			silent[0].Close()
			deadline := time.Now().Add(liveness)
			for !answersOptions(m.Addr()) {
				if time.Now().After(deadline) {
					t.Fatal("no new connection served after a slot was freed")
				}
				time.Sleep(20 * time.Millisecond)
			}
			st := m.guard.stats()
			t.Logf("guard: %+v", st)
			if st.Refused == 0 {
				t.Error("no refusal counted")
			}
			if gaps, dups := r.gaps(); gaps != 0 || dups != 0 {
				t.Errorf("reader disturbed: %d gaps, %d dups", gaps, dups)
			}
		})
	}
}

// A connection that keeps silent before its first request, or after a
// request while it neither plays nor records, is closed; a reader that
// plays is not, however long it stays quiet on its RTSP connection.
func TestSilentConnectionsClosed(t *testing.T) {
	for _, noCoalesce := range []bool{false, true} {
		t.Run(map[bool]string{false: "coalescing", true: "no-coalesce"}[noCoalesce], func(t *testing.T) {
			const timeout = 300 * time.Millisecond
			m := startMediator(t, func(m *Mediator) {
				m.TestSource = "test"
				m.RequestTimeout = timeout
				m.NoCoalesce = noCoalesce
			})
			r := startReader(t, "rtsp://"+m.Addr()+"/test")
			r.waitPackets(t, 20)

			waitClosed(t, dialT(t, m.Addr()), "a connection that sent nothing")
			chatty := dialRaw(t, m.Addr())
			chatty.do(base.Options, "rtsp://"+m.Addr()+"/", nil)
			waitClosed(t, chatty.nc, "a connection silent after OPTIONS")

			time.Sleep(3 * timeout) // the player's connection is as quiet
			r.waitPackets(t, 20)
			select {
			case err := <-r.done:
				t.Fatalf("the playing reader's session ended: %v", err)
			default:
			}
			if st := m.guard.stats(); st.Expired < 2 {
				t.Errorf("guard counted %d silent connections closed, want 2", st.Expired)
			}
		})
	}
}

func testH264Desc() *description.Session {
	return &description.Session{Medias: []*description.Media{{
		Type:    description.MediaTypeVideo,
		Formats: []format.Format{&format.H264{PayloadTyp: 96, PacketizationMode: 1}},
	}}}
}

// An ANNOUNCE that never RECORDs holds its path only until RecordTimeout:
// then a real publisher gets it.
func TestAnnounceWithoutRecordFreesPath(t *testing.T) {
	m := startMediator(t, func(m *Mediator) {
		m.Publish = true
		m.RecordTimeout = 300 * time.Millisecond
		m.RequestTimeout = time.Minute // only the record deadline may free the path
	})
	u, err := base.ParseURL("rtsp://" + m.Addr() + "/live")
	if err != nil {
		t.Fatal(err)
	}
	holder := &gortsplib.Client{Scheme: "rtsp", Host: u.Host}
	if err := holder.Start2(); err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	if _, err := holder.Announce(u, testH264Desc()); err != nil {
		t.Fatalf("ANNOUNCE: %v", err)
	}

	start := time.Now()
	var refused int
	for {
		pub := &gortsplib.Client{Scheme: "rtsp", Host: u.Host}
		err := pub.StartRecording(u.String(), testH264Desc())
		if err == nil {
			pub.Close()
			break
		}
		refused++
		if time.Since(start) > liveness {
			t.Fatalf("a publisher is still refused %s after an ANNOUNCE without RECORD: %v", liveness, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the path was free for a publisher after %s (%d refusals)", time.Since(start).Round(time.Millisecond), refused)
	if refused == 0 {
		t.Error("the first publisher was not refused: the path was never held")
	}
}
