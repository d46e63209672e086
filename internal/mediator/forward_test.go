package mediator

import (
	"testing"

	"github.com/pion/rtp"
)

type fwdRecorder struct{ seqs []uint16 }

func (r *fwdRecorder) write(_ int, p *rtp.Packet) { r.seqs = append(r.seqs, p.SequenceNumber) }

func pk(seq uint16) *rtp.Packet {
	return &rtp.Packet{Header: rtp.Header{SequenceNumber: seq, PayloadType: 96}}
}

func feed(f *forwarder, src uint64, from, to uint16) {
	for s := from; s != to+1; s++ {
		f.packet(src, 0, pk(s))
	}
}

func assertContiguous(t *testing.T, seqs []uint16, first, last uint16) {
	t.Helper()
	if len(seqs) == 0 || seqs[0] != first || seqs[len(seqs)-1] != last {
		t.Fatalf("forwarded %v, want %d..%d", seqs, first, last)
	}
	for i := 1; i < len(seqs); i++ {
		if seqs[i] != seqs[i-1]+1 {
			t.Fatalf("gap or duplicate between %d and %d in %v", seqs[i-1], seqs[i], seqs)
		}
	}
}

func TestForwarderSwitch(t *testing.T) {
	tests := []struct {
		name string
		run  func(f *forwarder)
		// first and last sequence numbers readers must see, contiguous
		first, last uint16
		lost        uint64
	}{
		{
			name: "new upstream behind the old one",
			run: func(f *forwarder) {
				f.attach(1)
				feed(f, 1, 100, 120)
				done := f.attach(2)
				feed(f, 2, 110, 115) // overlaps: the switch happens here
				feed(f, 1, 121, 125) // old upstream, now replaced: dropped
				feed(f, 2, 116, 140)
				<-done
			},
			first: 100, last: 140,
		},
		{
			name: "new upstream ahead of the old one",
			run: func(f *forwarder) {
				f.attach(1)
				feed(f, 1, 100, 120)
				done := f.attach(2)
				feed(f, 2, 125, 130) // held: 121..124 not forwarded yet
				feed(f, 1, 121, 126) // old catches up to the held packets
				feed(f, 2, 131, 140)
				<-done
			},
			first: 100, last: 140,
		},
		{
			name: "wraps around 65535",
			run: func(f *forwarder) {
				f.attach(1)
				feed(f, 1, 65530, 65535)
				done := f.attach(2)
				feed(f, 2, 65533, 65535)
				feed(f, 2, 0, 10)
				<-done
			},
			first: 65530, last: 10,
		},
		{
			name: "old upstream dies before overlap: gap is counted",
			run: func(f *forwarder) {
				f.attach(1)
				feed(f, 1, 100, 120)
				f.attach(2)
				feed(f, 2, 130, 131)
				f.detach(1)
				feed(f, 2, 132, 140)
			},
			first: 100, last: 140, lost: 9,
		},
		{
			name: "break then make: duplicates from the new upstream are dropped",
			run: func(f *forwarder) {
				f.attach(1)
				feed(f, 1, 100, 120)
				f.detach(1)
				f.attach(2)
				feed(f, 2, 115, 140)
			},
			first: 100, last: 140,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &fwdRecorder{}
			f := newForwarder(1, rec.write)
			tt.run(f)
			seqs := rec.seqs
			if tt.lost == 0 {
				assertContiguous(t, seqs, tt.first, tt.last)
			}
			_, _, lost := f.counters()
			if lost != tt.lost {
				t.Fatalf("lost = %d, want %d (forwarded %v)", lost, tt.lost, seqs)
			}
		})
	}
}

func TestForwarderResyncOnForeignNumbering(t *testing.T) {
	rec := &fwdRecorder{}
	f := newForwarder(1, rec.write)
	f.attach(1)
	feed(f, 1, 40000, 40010)
	f.detach(1)
	f.attach(2)
	feed(f, 2, 5, 10) // a new origin session numbering from scratch
	if got := rec.seqs[len(rec.seqs)-1]; got != 10 {
		t.Fatalf("after resync last forwarded = %d, want 10 (%v)", got, rec.seqs)
	}
}
