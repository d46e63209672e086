// Package event writes the JSON lines the tools print on stdout: a ready
// line first, then stats and events, one object per line, safe for
// concurrent use so components can share one stdout.
package event

import (
	"encoding/json"
	"io"
	"sync"
	"time"
)

// Writer encodes values as JSON lines. A nil *Writer discards everything,
// so components can be used without an output.
type Writer struct {
	mu  sync.Mutex
	enc *json.Encoder
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return &Writer{enc: enc}
}

// Emit writes one event: the fields of kv (a map) with "event" and "time"
// added.
func (w *Writer) Emit(name string, kv map[string]any) {
	if w == nil {
		return
	}
	m := make(map[string]any, len(kv)+2)
	for k, v := range kv {
		m[k] = v
	}
	m["event"] = name
	m["time"] = time.Now().UTC().Format(time.RFC3339Nano)
	w.Write(m)
}

// Write writes v as one JSON line. Errors are dropped: stdout going away
// must not stop the data path.
func (w *Writer) Write(v any) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.enc.Encode(v)
}
