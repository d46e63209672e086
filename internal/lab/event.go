package lab

import (
	"encoding/json"
	"time"
)

// Event is one JSON line a tool printed on stdout. Every reading of event
// fields goes through its methods, so a typed decoding replaces them here.
type Event struct {
	Name  string    // its "event" field
	At    time.Time // when this process read the line
	Index int       // its line number on stdout, from 0
	Line  string    // the line as printed

	fields map[string]any
}

// decodeEvent reads one stdout line; ok is false if it is not a JSON object.
func decodeEvent(line string, at time.Time, index int) (e Event, ok bool) {
	if json.Unmarshal([]byte(line), &e.fields) != nil || e.fields == nil {
		return Event{}, false
	}
	e.Name, _ = e.fields["event"].(string)
	e.At, e.Index, e.Line = at, index, line
	return e, true
}

// Str returns a string field ("" if absent or not a string).
func (e Event) Str(key string) string {
	s, _ := e.fields[key].(string)
	return s
}

// Num returns a number field (0 if absent or not a number).
func (e Event) Num(key string) float64 {
	f, _ := e.fields[key].(float64)
	return f
}

// Has reports whether the event has the field.
func (e Event) Has(key string) bool {
	_, ok := e.fields[key]
	return ok
}

// Field returns a field as JSON decoding made it (string, float64, bool,
// []any, map[string]any), nil if absent.
func (e Event) Field(key string) any { return e.fields[key] }

// ParseEvent reads one line of a tool's stdout printed elsewhere (a
// finished run's output); ok is false if it is not a JSON object.
func ParseEvent(line string) (e Event, ok bool) { return decodeEvent(line, time.Time{}, -1) }

// Decode unmarshals the whole line into v, for nested fields.
func (e Event) Decode(v any) error { return json.Unmarshal([]byte(e.Line), v) }

// Named matches the events called name for which match (nil: any) holds.
func Named(name string, match func(Event) bool) func(Event) bool {
	return func(e Event) bool { return e.Name == name && (match == nil || match(e)) }
}
