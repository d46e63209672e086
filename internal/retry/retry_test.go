package retry

import (
	"context"
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	b := &Backoff{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond}
	want := []time.Duration{10, 20, 40, 40}
	for i, w := range want {
		if got := b.Next(); got != w*time.Millisecond {
			t.Fatalf("wait %d: %v, want %v", i, got, w*time.Millisecond)
		}
	}
	b.Reset()
	if got := b.Next(); got != 10*time.Millisecond {
		t.Fatalf("after Reset: %v", got)
	}

	j := &Backoff{Min: 10 * time.Millisecond, Max: 40 * time.Millisecond, Immediate: true, Jitter: true}
	if got := j.Next(); got != 0 {
		t.Fatalf("first retry waits %v, want at once", got)
	}
	for i, w := range want {
		d, full := j.Next(), w*time.Millisecond
		if d < full/2 || d > full {
			t.Fatalf("jittered wait %d: %v, want within [%v, %v]", i, d, full/2, full)
		}
	}
	j.Reset()
	if got := j.Next(); got != 0 {
		t.Fatalf("after Reset the first retry waits %v", got)
	}
}

func TestSleep(t *testing.T) {
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("a full wait reported cut short")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("a cancelled wait reported complete")
	}
}
