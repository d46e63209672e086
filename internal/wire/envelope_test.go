package wire

import (
	"encoding/json"
	"testing"
)

// FuzzScanEnvelope: whatever line the fast envelope reader takes, json
// takes too and reads the same envelope from it, so Decode's answer does
// not depend on which of them read the line.
func FuzzScanEnvelope(f *testing.F) {
	for _, s := range []string{
		`{"v":1,"type":"heartbeat"}`,
		`{"v":1,"type":"heartbeat","id":7}`,
		`{"v":1,"type":"ack","id":7,"re":3}`,
		`{"v":1,"type":"ack","re":3}`,
		`{"v":1,"type":"heartbeat","id":18446744073709551615}`,
		`{"v":1,"type":"heartbeat","id":18446744073709551616}`,
		`{"v":01,"type":"heartbeat"}`,
		`{"v":1,"type":"heart\u0062eat"}`,
		`{"v":1,"type":"heartbeat","id":1,"id":2}`,
		`{"v":1,"type":"heartbeat" }`,
		`{"v":1,"type":"joined","stream":"s","parent":"p"}`,
		`{"v":1,"type":"heartbeat","re":1,"id":2}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		env, v, ok := scanEnvelope(line)
		if !ok {
			return
		}
		var want envelope
		if err := json.Unmarshal(line, &want); err != nil {
			t.Fatalf("%q: read fast, but json says: %v", line, err)
		}
		if want.V == nil || *want.V != v || want.Type != env.Type || want.ID != env.ID || want.Re != env.Re {
			t.Fatalf("%q: read fast as v=%d %+v, json reads %+v (v %v)", line, v, env, want, want.V)
		}
	})
}

// The lines Encode writes for bodies without fields are the ones read
// fast; the others are left to json.
func TestScanEnvelopeTakesWhatEncodeWrites(t *testing.T) {
	for _, m := range []Msg{{Body: &Heartbeat{}}, {ID: 9, Body: &Heartbeat{}}, {ID: 1 << 40, Re: 12, Body: &Heartbeat{}}} {
		line, err := Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		env, v, ok := scanEnvelope(line)
		if !ok || v != Version || env.Type != m.Body.Type() || env.ID != m.ID || env.Re != m.Re {
			t.Errorf("%s: fast read %v: v=%d %+v", line, ok, v, env)
		}
	}
	for _, s := range []string{`{"v":1,"type":"heartbeat" }`, `{"v":1,"type":"joined","stream":"s"}`, `{"type":"heartbeat","v":1}`, `{"v":1,"type":"heartbeat","id":18446744073709551616}`} {
		if _, _, ok := scanEnvelope([]byte(s)); ok {
			t.Errorf("%s read fast, want json to decide", s)
		}
	}
}
