package mediator

import (
	"fmt"
	"strings"
	"testing"

	"github.com/ocm-overlay/ocm/internal/control"
	"github.com/ocm-overlay/ocm/internal/lab"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// TestNoRoomAnswers503: when ocm-relay gives up finding a parent with
// room (its --join-attempts rounds or --join-wait spent), the player's
// DESCRIBE is answered 503 saying so, not 502 blaming the origin; and a
// reason longer than a status line may be is cut to fit, so the player
// can still read the answer (gortsplib refused the whole answer).
func TestNoRoomAnswers503(t *testing.T) {
	relay := startFakeRelay(t, control.Welcome{Node: "n1", Willing: true}, func(r *control.Resolve) wire.Body {
		return &wire.Error{Code: control.CodeNoRoom, Message: "no parent with room for " + r.Stream +
			" after 10 candidate rounds in 3s (ocm-relay --join-attempts 10, --join-wait 3s): " + strings.Repeat("x", 300)}
	})
	o := attachOCM(t, relay.ln.Addr().String(), false, nil)
	origin := testOrigin(t)
	_, err := lab.Dial("rtsp://"+o.m.Addr()+"/live?"+origin.Addr(), lab.ReaderOptions{})
	if err == nil {
		t.Fatal("DESCRIBE succeeded with no parent having room")
	}
	for _, want := range []string{"503", "no room in the overlay", "--join-attempts 10", "...)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("DESCRIBE error %q does not say %q", err, want)
		}
	}
	if len(relay.asked()) != 1 {
		t.Errorf("relay asked %d times, want once (it did the retrying)", len(relay.asked()))
	}
}

// TestFailedResolveAskedOnce: a request whose stream fails its first
// resolve at once is answered with that failure, not resolved a second
// time (the failed relay closed before the request reached it, and a
// new one was made for it: the relay was asked twice). Each request
// names a stream of its own, so none can meet another's failure.
func TestFailedResolveAskedOnce(t *testing.T) {
	relay := startFakeRelay(t, control.Welcome{Node: "n1", Willing: true}, func(r *control.Resolve) wire.Body {
		return &wire.Error{Code: control.CodeNoRoom, Message: "no parent with room"}
	})
	o := attachOCM(t, relay.ln.Addr().String(), false, nil)
	origin := testOrigin(t)
	const n = 100
	for i := range n {
		if _, err := lab.Dial(fmt.Sprintf("rtsp://%s/live%d?%s", o.m.Addr(), i, origin.Addr()), lab.ReaderOptions{}); err == nil {
			t.Fatalf("DESCRIBE %d succeeded", i)
		}
	}
	asked := map[string]int{}
	for _, r := range relay.asked() {
		asked[r.Stream]++
	}
	for s, k := range asked {
		if k != 1 {
			t.Errorf("%s resolved %d times for one request", s, k)
		}
	}
	if len(asked) != n {
		t.Errorf("%d streams resolved, want %d", len(asked), n)
	}
}
