package lab

import (
	"context"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
)

// Event is one event line a tool printed on stdout, decoded into its type
// by internal/event: the one place lines become events.
type Event struct {
	E     event.Event // the typed event
	Time  time.Time   // the time the tool wrote in it
	At    time.Time   // when this process read it
	Index int         // its line number on stdout, from 0
	Line  string      // the line as printed
}

// Name is the event's name ("ready", "upstream", ...).
func (e Event) Name() string { return e.E.EventName() }

// decodeEvent reads one stdout line; the error says why it is not an event.
func decodeEvent(line string, at time.Time, index int) (Event, error) {
	e, ts, err := event.DecodeTime([]byte(line))
	if err != nil {
		return Event{}, err
	}
	return Event{E: e, Time: ts, At: at, Index: index, Line: line}, nil
}

// Timed is an event of type T as a process printed it.
type Timed[T event.Event] struct {
	E     T
	Time  time.Time // the time the tool wrote in it
	At    time.Time // when this process read it
	Index int       // its line number on stdout
}

// Source is a running tool whose events can be read: a *Proc, or what
// embeds one (*Mediator, *Server).
type Source interface {
	labProc() *Proc
}

func (p *Proc) labProc() *Proc { return p }

func timed[T event.Event](e Event) (Timed[T], bool) {
	v, ok := e.E.(T)
	return Timed[T]{E: v, Time: e.Time, At: e.At, Index: e.Index}, ok
}

// EventsSince returns s's events T read at or after t (zero: all), in
// order.
func EventsSince[T event.Event](s Source, t time.Time) []Timed[T] {
	p := s.labProc()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Timed[T]
	for _, e := range p.events {
		if v, ok := timed[T](e); ok && !e.At.Before(t) {
			out = append(out, v)
		}
	}
	return out
}

// Events returns s's events T so far.
func Events[T event.Event](s Source) []T {
	var out []T
	for _, e := range EventsSince[T](s, time.Time{}) {
		out = append(out, e.E)
	}
	return out
}

// Last returns s's latest event T.
func Last[T event.Event](s Source) (T, bool) {
	ev := EventsSince[T](s, time.Time{})
	if len(ev) == 0 {
		var zero T
		return zero, false
	}
	return ev[len(ev)-1].E, true
}

// Await returns s's first event T at stdout line from or later that match
// (nil: any) accepts; it fails if none comes within limit, the process
// exits first or ctx ends.
func Await[T event.Event](ctx context.Context, s Source, limit time.Duration, from int, match func(T) bool) (Timed[T], error) {
	p := s.labProc()
	var found Timed[T]
	next := 0 // index into p.events: those before were rejected
	err := p.watch(ctx, limit, func() bool {
		for ; next < len(p.events); next++ {
			if v, ok := timed[T](p.events[next]); ok && v.Index >= from && (match == nil || match(v.E)) {
				found = v
				return true
			}
		}
		return false
	})
	if err != nil {
		var zero T
		err = p.explain(err, zero.EventName())
	}
	return found, err
}

// WaitEvent is Await for tests: it waits up to Patience and fails t with
// what was awaited. It returns the event and its line index.
func WaitEvent[T event.Event](t TB, s Source, what string, from int, match func(T) bool) (T, int) {
	t.Helper()
	e, err := Await(context.Background(), s, Patience, from, match)
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	return e.E, e.Index
}

// Ready waits up to limit for s's first stdout line, which must be its
// ready event, a T (the addresses it bound), and returns it.
func Ready[T event.Event](ctx context.Context, s Source, limit time.Duration) (T, error) {
	p := s.labProc()
	var zero T
	e, err := p.Ready(ctx, limit)
	if err != nil {
		return zero, err
	}
	v, ok := e.E.(T)
	if !ok {
		return zero, errNotReady(p, e.Line)
	}
	return v, nil
}
