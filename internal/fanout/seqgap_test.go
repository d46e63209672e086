package fanout

import "testing"

func TestSeqGap(t *testing.T) {
	type pkt struct {
		ssrc uint32
		seq  uint16
	}
	cases := []struct {
		name                      string
		pkts                      []pkt
		gaps, lost, late, resyncs uint64
	}{
		{"in order", []pkt{{1, 10}, {1, 11}, {1, 12}}, 0, 0, 0, 0},
		{"one gap", []pkt{{1, 10}, {1, 11}, {1, 14}, {1, 15}}, 1, 2, 0, 0},
		{"wraps", []pkt{{1, 65534}, {1, 65535}, {1, 0}, {1, 1}}, 0, 0, 0, 0},
		{"gap across wrap", []pkt{{1, 65534}, {1, 1}}, 1, 2, 0, 0},
		{"reordered", []pkt{{1, 10}, {1, 12}, {1, 11}, {1, 13}}, 1, 1, 1, 0},
		{"duplicate", []pkt{{1, 10}, {1, 11}, {1, 11}, {1, 12}}, 0, 0, 1, 0},
		{"new ssrc", []pkt{{1, 10}, {2, 5000}, {2, 5001}}, 0, 0, 0, 1},
		{"restart jump", []pkt{{1, 10}, {1, 20000}, {1, 20001}}, 0, 0, 0, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var g SeqGap
			for _, p := range c.pkts {
				g.Observe(p.ssrc, p.seq)
			}
			if g.Gaps.Load() != c.gaps || g.Lost.Load() != c.lost || g.Late.Load() != c.late || g.Resyncs.Load() != c.resyncs {
				t.Errorf("gaps %d lost %d late %d resyncs %d, want %d %d %d %d",
					g.Gaps.Load(), g.Lost.Load(), g.Late.Load(), g.Resyncs.Load(), c.gaps, c.lost, c.late, c.resyncs)
			}
		})
	}
}
