package testutil

import (
	"fmt"
	"sync"
	"testing"
)

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Fprintf(&b, "{\"event\":\"e%d\",\"n\":%d}\n", i%2, i)
		}()
	}
	wg.Wait()
	if got := len(b.Events(t)); got != 8 {
		t.Fatalf("%d events, want 8", got)
	}
	if got := len(b.Find(t, "e1")); got != 4 {
		t.Fatalf("%d e1 events, want 4", got)
	}
}
