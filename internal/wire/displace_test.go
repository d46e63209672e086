package wire

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// The RTTs a relay or the server puts on the wire are 0 (unknown) to
// MaxMs; anything else is refused, naming the field, whichever side
// sends it.
func TestMsFieldsValidated(t *testing.T) {
	const s = "rtsp://ms:554/live"
	for _, tc := range []struct {
		field string
		body  func(ms float64) Body
	}{
		{"candidates[1].path_ms", func(ms float64) Body {
			return &Candidates{Stream: s, Candidates: []Candidate{{Node: OriginID, RTSP: "ms:554"},
				{Node: "n2", RTSP: "10.0.0.2:8554", Capacity: 2, PathMs: ms}}}
		}},
		{"candidates[0].displace_ms", func(ms float64) Body {
			return &Candidates{Stream: s, Candidates: []Candidate{{Node: OriginID, RTSP: "ms:554", DisplaceMs: ms}}}
		}},
		{"rtt_ms", func(ms float64) Body { return &Joined{Stream: s, Parent: OriginID, RTTMs: ms, Displace: true} }},
		{"streams[0].rtt_ms", func(ms float64) Body {
			return &Report{Streams: []StreamReport{{Stream: s, Parent: OriginID, Level: 1, RTTMs: ms}}}
		}},
		{"streams[0].rtt_ms", func(ms float64) Body {
			return &Hello{Node: "n1", Streams: []Relayed{{Stream: s, Parent: OriginID, Level: 1, RTTMs: ms}}}
		}},
	} {
		for _, ms := range []float64{0, 0.25, 150, MaxMs} {
			if err := tc.body(ms).Validate(); err != nil {
				t.Errorf("%s %v refused: %v", tc.field, ms, err)
			}
			if _, err := Encode(Msg{Body: tc.body(ms)}); err != nil {
				t.Errorf("%s %v not encoded: %v", tc.field, ms, err)
			}
		}
		for _, ms := range []float64{-1, -math.SmallestNonzeroFloat64, MaxMs + 1, math.NaN(), math.Inf(1)} {
			err := tc.body(ms).Validate()
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.field+" ") {
				t.Errorf("%s %v: err %v, want invalid naming %s", tc.field, ms, err, tc.field)
			}
			if _, err := Encode(Msg{Body: tc.body(ms)}); !errors.Is(err, ErrInvalid) {
				t.Errorf("%s %v encoded: %v", tc.field, ms, err)
			}
		}
	}
	// From the network: a number JSON can carry, out of range.
	for _, line := range []string{
		`{"v":1,"type":"joined","stream":"s","parent":"origin","rtt_ms":-5}`,
		`{"v":1,"type":"joined","stream":"s","parent":"origin","rtt_ms":3600001}`,
		`{"v":1,"type":"report","streams":[{"stream":"s","parent":"origin","rtt_ms":-0.5}]}`,
		`{"v":1,"type":"candidates","stream":"s","candidates":[{"node":"origin","rtsp":"ms:554","displace_ms":1e9}]}`,
		`{"v":1,"type":"candidates","stream":"s","candidates":[{"node":"origin","rtsp":"ms:554","path_ms":-1}]}`,
	} {
		if _, err := Decode([]byte(line)); !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), "_ms") {
			t.Errorf("%s: err %v, want invalid naming the field", line, err)
		}
	}
}

// The displacement rule: at most half the farthest child's RTT and at
// least DisplaceMinGainMs less; an unknown RTT (0) never displaces.
func TestDisplaces(t *testing.T) {
	for _, tc := range []struct {
		rtt, worst float64
		want       bool
	}{
		{5, 150, true},
		{75, 150, true},
		{75.5, 150, false},
		{10, 20, true},
		{10.5, 20, false}, // above half
		{5, 14, false},    // half, but gains 9 ms
		{0, 150, false},
		{5, 0, false},
		{-5, 150, false},
	} {
		if got := Displaces(tc.rtt, tc.worst); got != tc.want {
			t.Errorf("Displaces(%v, %v) = %v, want %v", tc.rtt, tc.worst, got, tc.want)
		}
	}
}
