// Package event defines the JSON lines the tools print on stdout, one Go
// type per event, and writes and reads them: a tool emits a value, a test,
// bench or monitor decodes the line back into the same type, so a renamed
// field breaks the build, not a run.
//
// Every line is one JSON object with "event" (the name) and "time" (RFC
// 3339, UTC) added to the fields of its type. A tool prints its ready line
// first, then events and stats. The events, by tool:
//
//	ocm-server    ready (ServerReady), node_joined, node_left, node_failed,
//	              node_replaced, rejected, join_rejected, tree_joined,
//	              tree_pending, tree_orphaned, tree_removed, tree_displaced,
//	              tree_left, reconnect_sent, handover_started,
//	              handover_done, drain_sent, policy_changed, child_stalled,
//	              node_quarantined, node_released, report_summary
//	ocm-relay     ready (RelayReady), server, joined, fallback, reconnect,
//	              improved, drain, left (Left, or LeftOverlay when leaving
//	              for good)
//	rtsp-mediator ready (MediatorReady), publisher, redirect, upstream,
//	              stats (StreamStats), conns
//	rtp-fanout    ready (FanoutReady), sdp, stats (FanoutStats), reply
//	rtsp-mediator read  progress (ReadProgress), summary (ReadSummary)
//	bench's floor ready (FloorReady)
//
// Some names are shared by tools that print different fields ("ready",
// "stats", "left"); Decode tells them apart by a field only one of them
// has (see kinds). Decode refuses a field its type does not have, so a
// field renamed on one side only fails the reader's test at once.
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Event is one event type: its fields, JSON-tagged, and its name.
type Event interface {
	EventName() string
}

// Writer encodes events and other values as JSON lines. A nil *Writer
// discards everything, so components can be used without an output.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	buf bytes.Buffer
	enc *json.Encoder
	now func() time.Time
	tee func(name string, line []byte)
}

// Tee makes every later Emit also call fn with the event's name and its
// line (newline included; fn may keep it), in the order the lines are
// written and under the Writer's lock, so fn must not block. Nil stops it.
func (w *Writer) Tee(fn func(name string, line []byte)) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.tee = fn
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer {
	ew := &Writer{w: w, now: time.Now}
	ew.enc = json.NewEncoder(&ew.buf)
	ew.enc.SetEscapeHTML(false)
	return ew
}

// Emit writes one event: the fields of e with "event" and "time" added.
// Errors are dropped, as in Write.
func (w *Writer) Emit(e Event) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Reset()
	if err := w.enc.Encode(e); err != nil || w.buf.Len() < 2 || w.buf.Bytes()[0] != '{' {
		return // every event type is a struct: unreachable
	}
	fields := bytes.TrimSpace(w.buf.Bytes()[1:]) // after '{', up to and with '}'
	line := make([]byte, 0, len(fields)+80)
	line = fmt.Appendf(line, `{"event":%q,"time":%q`, e.EventName(), w.now().UTC().Format(time.RFC3339Nano))
	if len(fields) > 1 {
		line = append(line, ',')
	}
	line = append(line, fields...)
	line = append(line, '\n')
	_, _ = w.w.Write(line)
	if w.tee != nil {
		w.tee(e.EventName(), line)
	}
}

// Write writes v as one JSON line, as it is: for lines that are not
// events (ocm-probe's results). Errors are dropped: stdout going away must
// not stop the data path.
func (w *Writer) Write(v any) {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Reset()
	if w.enc.Encode(v) == nil {
		_, _ = w.w.Write(w.buf.Bytes())
	}
}

// ErrUnknown is returned by Decode for a line whose "event" names no
// event of this package.
var ErrUnknown = errors.New("unknown event")

// kind is one event type under its name: key is a field only this type
// has among the types of the same name ("" for a name with one type).
type kind struct {
	key    string
	decode func(data []byte) (Event, error)
}

// kinds lists every event type by name.
var kinds = map[string][]kind{}

func register[T Event](key string) {
	var zero T
	name := zero.EventName()
	kinds[name] = append(kinds[name], kind{key: key, decode: func(data []byte) (Event, error) {
		var v T
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		return v, nil
	}})
}

// Decode returns the typed event of one line. A line that is not a JSON
// object, has no "event", names an unknown event, or has a field its type
// does not know, is an error naming what was wrong.
func Decode(line []byte) (Event, error) {
	e, _, err := DecodeTime(line)
	return e, err
}

// DecodeTime is Decode that also returns the line's "time".
func DecodeTime(line []byte) (Event, time.Time, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(line, &m); err != nil {
		return nil, time.Time{}, fmt.Errorf("event line %.80q: %w", line, err)
	}
	var name, ts string
	if err := json.Unmarshal(m["event"], &name); err != nil || name == "" {
		return nil, time.Time{}, fmt.Errorf("event line %.80q: no \"event\" name", line)
	}
	ks := kinds[name]
	if len(ks) == 0 {
		return nil, time.Time{}, fmt.Errorf("event line %.80q: %w %q", line, ErrUnknown, name)
	}
	var at time.Time
	if raw, ok := m["time"]; ok {
		if err := json.Unmarshal(raw, &ts); err != nil {
			return nil, time.Time{}, fmt.Errorf("%s event: time: %w", name, err)
		}
		t, err := time.Parse(time.RFC3339Nano, ts)
		if err != nil {
			return nil, time.Time{}, fmt.Errorf("%s event: time: %w", name, err)
		}
		at = t
	}
	k := ks[0]
	for _, c := range ks {
		if _, ok := m[c.key]; ok && c.key != "" {
			k = c
			break
		}
	}
	delete(m, "event")
	delete(m, "time")
	fields, err := json.Marshal(m)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%s event: %w", name, err)
	}
	e, err := k.decode(fields)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%s event: %w", name, err)
	}
	return e, at, nil
}

// Of returns the events of type T among es, in order.
func Of[T Event](es []Event) []T {
	var out []T
	for _, e := range es {
		if v, ok := e.(T); ok {
			out = append(out, v)
		}
	}
	return out
}
