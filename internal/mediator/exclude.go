package mediator

import (
	"sort"
	"time"
)

// exclusions are the upstreams a relayed stream stays away from after they
// failed: the resolver is asked for something else while something else is
// offered, but never for good, because what failed may be the only way
// back (the origin, restarted; the parent, once its own upstream returns).
// An address is forgotten ttl after its last failure, and the whole list
// when a resolve finds nothing without it (forget).
type exclusions struct {
	ttl   time.Duration
	until map[string]time.Time // address -> when it may be offered again
}

// add excludes addr from now for ttl.
func (e *exclusions) add(addr string, now time.Time) {
	if addr == "" {
		return
	}
	if e.until == nil {
		e.until = map[string]time.Time{}
	}
	e.until[addr] = now.Add(e.ttl)
}

// list returns the addresses excluded at now, sorted, and forgets the
// others.
func (e *exclusions) list(now time.Time) []string {
	var out []string
	for a, t := range e.until {
		if now.Before(t) {
			out = append(out, a)
		} else {
			delete(e.until, a)
		}
	}
	sort.Strings(out)
	return out
}

// forget clears the list.
func (e *exclusions) forget() { clear(e.until) }
