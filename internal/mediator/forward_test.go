package mediator

import (
	"testing"
	"time"

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

// TestForwarderOriginRestart: a restarted origin numbers its packets from
// a random point, which may be just behind the last packet forwarded. Its
// packets are not duplicates: a duplicate comes soon after the original,
// with a timestamp near it. They are forwarded, whether they come through
// a new upstream (the relay under the origin) or the same one (a relay
// below, whose parent forwards the new numbering), and are counted neither
// lost nor dropped.
func TestForwarderOriginRestart(t *testing.T) {
	const ts0 = 1_000_000
	tests := []struct {
		name    string
		newSrc  bool          // the new numbering comes through a new upstream
		seq     uint16        // the restarted origin's first sequence number
		ts      uint32        // and timestamp
		quiet   time.Duration // since the last packet forwarded
		forward bool
	}{
		{"new upstream, numbering behind, timestamp elsewhere", true, 39000, 3_000_000_000, 100 * time.Millisecond, true},
		{"new upstream, numbering behind, after a long silence", true, 39000, ts0, 3 * time.Second, true},
		{"same upstream, numbering behind, timestamp elsewhere", false, 40005, 3_000_000_000, 100 * time.Millisecond, true},
		{"same upstream, numbering far ahead, after a long silence", false, 50000, ts0 + 270_000, 3 * time.Second, true},
		{"new upstream, a duplicate", true, 40005, ts0 - 3600, 100 * time.Millisecond, false},
		{"same upstream, a duplicate", false, 40005, ts0 - 3600, 100 * time.Millisecond, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := time.Unix(1000, 0)
			rec := &fwdRecorder{}
			f := newForwarder(1, rec.write)
			f.now = func() time.Time { return now }
			f.attach(1)
			for s := uint16(40000); s <= 40010; s++ {
				f.packet(1, 0, pkTS(s, ts0-uint32(40010-s)*3600))
			}
			src := uint64(1)
			if tt.newSrc {
				f.detach(1)
				f.attach(2)
				src = 2
			}
			now = now.Add(tt.quiet)
			for i := range uint16(5) {
				f.packet(src, 0, pkTS(tt.seq+i, tt.ts+uint32(i)*3600))
			}
			fwd, dropped, lost := f.counters()
			if !tt.forward {
				if fwd != 11 || dropped != 5 {
					t.Fatalf("forwarded %d dropped %d (%v), want the 5 duplicates dropped", fwd, dropped, rec.seqs)
				}
				return
			}
			assertContiguous(t, rec.seqs[11:], tt.seq, tt.seq+4)
			if fwd != 16 || dropped != 0 || lost != 0 {
				t.Fatalf("forwarded %d dropped %d lost %d (%v), want all 16, none dropped or lost", fwd, dropped, lost, rec.seqs)
			}
		})
	}
}

func pkTS(seq uint16, ts uint32) *rtp.Packet {
	p := pk(seq)
	p.Timestamp = ts
	return p
}
