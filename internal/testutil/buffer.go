// Package testutil holds what several packages' tests share.
package testutil

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	"github.com/ocm-overlay/ocm/internal/event"
)

// Buffer is an io.Writer safe for concurrent use: a tool's stdout or
// stderr, or an event.Writer's output, read while it is being written.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Events decodes the event lines written so far into their types; a line
// that is not an event of package event fails the test.
func (b *Buffer) Events(t testing.TB) []event.Event {
	t.Helper()
	var out []event.Event
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		e, err := event.Decode([]byte(line))
		if err != nil {
			t.Fatalf("event line %q: %v", line, err)
		}
		out = append(out, e)
	}
	return out
}

// Find returns the events of type T written to b so far, in order.
func Find[T event.Event](t testing.TB, b *Buffer) []T {
	t.Helper()
	return event.Of[T](b.Events(t))
}
