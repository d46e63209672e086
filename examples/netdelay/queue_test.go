package main

import (
	"context"
	"sync"
	"testing"
	"time"
)

type delivery struct {
	pkt string
	at  time.Time
}

// startLine runs l until the test ends and returns what it writes.
func startLine(t *testing.T, l *line) <-chan delivery {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := make(chan delivery, 100)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		l.run(ctx, func(p []byte) error {
			out <- delivery{string(p), time.Now()}
			return nil
		})
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	return out
}

func TestLineDelaysInOrder(t *testing.T) {
	const delay = 30 * time.Millisecond
	l := newLine(delay, 16)
	out := startLine(t, l)
	sent := map[string]time.Time{}
	buf := []byte("p0")
	for i := 0; i < 5; i++ {
		buf[1] = byte('0' + i)
		sent[string(buf)] = time.Now()
		if !l.push(buf) {
			t.Fatalf("push %d refused", i)
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := 0; i < 5; i++ {
		select {
		case d := <-out:
			want := "p" + string(rune('0'+i))
			if d.pkt != want {
				t.Fatalf("delivery %d is %q, want %q (order)", i, d.pkt, want)
			}
			if got := d.at.Sub(sent[d.pkt]); got < delay {
				t.Errorf("%s delivered after %v, before the delay %v", d.pkt, got, delay)
			} else {
				t.Logf("%s delivered after %v", d.pkt, got)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("delivery %d never came", i)
		}
	}
	// A packet is counted once its write has returned, after the test
	// received it.
	for end := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		w, d := l.counts()
		if w == 5 && d == 0 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("counts: written %d dropped %d, want 5 and 0", w, d)
		}
	}
}

func TestLineBoundDrops(t *testing.T) {
	l := newLine(time.Hour, 3) // nothing gets out while the test runs
	startLine(t, l)
	for i := 0; i < 5; i++ {
		ok := l.push([]byte{byte(i)})
		if want := i < 3; ok != want {
			t.Errorf("push %d: %v, want %v (bound 3)", i, ok, want)
		}
	}
	if w, d := l.counts(); w != 0 || d != 2 {
		t.Errorf("counts: written %d dropped %d, want 0 and 2", w, d)
	}
}

func TestLineCopiesPacket(t *testing.T) {
	l := newLine(0, 4)
	out := startLine(t, l)
	buf := []byte("abc")
	l.push(buf)
	copy(buf, "xyz")
	select {
	case d := <-out:
		if d.pkt != "abc" {
			t.Errorf("delivered %q, want the packet as pushed %q", d.pkt, "abc")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no delivery")
	}
}
