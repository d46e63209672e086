package testutil

import (
	"fmt"
	"sync"
	"testing"

	"github.com/ocm-overlay/ocm/internal/event"
)

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 1 {
				fmt.Fprintf(&b, "{\"event\":\"drain\",\"reason\":\"r%d\"}\n", i)
			} else {
				fmt.Fprintf(&b, "{\"event\":\"drain_sent\",\"node\":\"n%d\"}\n", i)
			}
		}()
	}
	wg.Wait()
	if got := len(b.Events(t)); got != 8 {
		t.Fatalf("%d events, want 8", got)
	}
	if got := len(Find[event.Drain](t, &b)); got != 4 {
		t.Fatalf("%d drain events, want 4", got)
	}
}
