package main

import (
	"context"
	"testing"
	"time"

	"github.com/pion/rtp"
)

func TestPercentile(t *testing.T) {
	v := []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, tc := range []struct {
		p    float64
		want int64
	}{{0.5, 5}, {0.99, 10}, {0.1, 1}, {0, 1}, {1, 10}} {
		if got := percentile(v, tc.p); got != tc.want {
			t.Errorf("p%.0f = %d, want %d", tc.p*100, got, tc.want)
		}
	}
}

// The recorder must place packets by their position in the publisher's
// stream across a sequence-number wrap.
func TestRecorderUnwrapsSequenceNumbers(t *testing.T) {
	pub := &publisher{}
	pub.sent.Store(65530)
	r := newRecorder(pub, time.Now(), 32)
	r.setBase(65528)
	for k := int64(65528); k < 65550; k++ {
		if k == 65540 {
			continue // lost
		}
		r.onPacket(&rtp.Packet{Header: rtp.Header{SequenceNumber: uint16(k)}})
	}
	r.onPacket(&rtp.Packet{Header: rtp.Header{SequenceNumber: 65545 - 65536}}) // a duplicate
	for i := range int64(22) {
		if got := r.arrivals[i] != 0; got != (i != 12) {
			t.Errorf("slot %d (seq %d): received %v", i, uint16(65528+i), got)
		}
	}
	if r.dups != 1 {
		t.Errorf("dups = %d, want 1", r.dups)
	}
}

// TestFloorProcess runs the floor as the bench does, re-executing this test
// binary, which also exercises lab.StartWith and its ready line.
func TestFloorProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a process")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, mode := range []string{"writev", "packet"} {
		t.Run(mode, func(t *testing.T) {
			f, err := startFloor(ctx, t, mode, 3)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			want := int64(3 * 2 * floorBytesPerFrame())
			for f.received.Load() < want {
				if ctx.Err() != nil {
					t.Fatalf("received %d bytes, want at least %d", f.received.Load(), want)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if _, err := f.proc.CPUTime(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
