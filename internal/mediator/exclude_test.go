package mediator

import (
	"slices"
	"testing"
	"time"
)

// TestExclusions: a failed upstream is avoided for the ttl after its last
// failure, then offered again; forget clears the list at once.
func TestExclusions(t *testing.T) {
	t0 := time.Unix(1000, 0)
	e := exclusions{ttl: 5 * time.Second}
	if got := e.list(t0); len(got) != 0 {
		t.Fatalf("empty list = %v", got)
	}
	e.add("origin:554", t0)
	e.add("b:8554", t0.Add(2*time.Second))
	e.add("", t0) // an upstream without address (a resolve that failed) is nothing to avoid
	steps := []struct {
		at   time.Duration
		want []string
	}{
		{0, []string{"b:8554", "origin:554"}},
		{4999 * time.Millisecond, []string{"b:8554", "origin:554"}},
		{5 * time.Second, []string{"b:8554"}}, // the origin is offered again
		{7 * time.Second, nil},
	}
	for _, s := range steps {
		if got := e.list(t0.Add(s.at)); !slices.Equal(got, s.want) {
			t.Fatalf("at +%v: excluded %v, want %v", s.at, got, s.want)
		}
	}

	// Failing again restarts the clock of that address only.
	e.add("a:8554", t0)
	e.add("b:8554", t0)
	e.add("a:8554", t0.Add(4*time.Second))
	if got, want := e.list(t0.Add(6*time.Second)), []string{"a:8554"}; !slices.Equal(got, want) {
		t.Fatalf("after a second failure: %v, want %v", got, want)
	}
	e.forget()
	if got := e.list(t0.Add(6 * time.Second)); len(got) != 0 {
		t.Fatalf("after forget: %v", got)
	}
}
