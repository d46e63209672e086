// Package testutil holds what several packages' tests share.
package testutil

import (
	"bytes"
	"encoding/json"
	"strings"
	"sync"
	"testing"
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

// Events decodes the JSON event lines written so far; a line that is not
// JSON fails the test.
func (b *Buffer) Events(t testing.TB) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("event line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// Find returns the events named name ("event" field), in order.
func (b *Buffer) Find(t testing.TB, name string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, e := range b.Events(t) {
		if e["event"] == name {
			out = append(out, e)
		}
	}
	return out
}
