package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/fanoutapi"
)

// samples holds one value of every event type, every field set, so a
// round trip shows each field survives under its tag.
var samples = []Event{
	ServerReady{OCM: "127.0.0.1:0", HTTP: "127.0.0.1:0", Version: "v1.2.3"},
	NodeJoined{Node: "a", Remote: "127.0.0.1:0", RTSP: "127.0.0.1:0", Probe: "127.0.0.1:0", Willing: true, Capacity: 4, Cores: 2, Streams: 1},
	NodeLeft{NodeGone{Node: "a", Remote: "r", Cause: "closed", Detail: "d", Streams: []string{"s"}, Policy: "reconnect"}},
	NodeFailed{NodeGone{Node: "a", Remote: "r", Cause: "heartbeat", Detail: "d", Streams: []string{"s", "t"}, Policy: "drop"}},
	NodeReplaced{Node: "a", OldRemote: "o", Remote: "r"},
	Rejected{Remote: "r", Code: "duplicate_node", Node: "a", LiveRemote: "l", Message: "m"},
	JoinRejected{Stream: "s", Node: "a", Parent: "p", Code: "c", Message: "m"},
	TreeJoined{Stream: "s", Node: "a", Parent: "p", From: "f", Level: 2, Subtree: 3},
	TreePending{Stream: "s", Node: "a", Parent: "p"},
	TreeOrphaned{Stream: "s", Node: "a", Cause: "c"},
	TreeRemoved{Stream: "s", Node: "a", Cause: "c"},
	TreeDisplaced{Stream: "s", Node: "a", From: "p", By: "b", RTTMs: 5, WorstMs: 150},
	TreeLeft{Stream: "s", Node: "a"},
	ReconnectSent{Stream: "s", Node: "a", Reason: "parent_left", Target: "b"},
	HandoverStarted{Stream: "s", Node: "a", Children: []HandoverMove{{Node: "b", Target: "c", Level: 1}}, TimeoutMs: 5000},
	HandoverDone{Stream: "s", Node: "a", Result: "switched", Remaining: []string{"b"}},
	DrainSent{Node: "a"},
	PolicyChanged{From: "reconnect", To: "drop"},
	ChildStalled{Stream: "s", Node: "p", Child: "c", Verdict: "counted", Why: "w"},
	NodeQuarantined{Node: "p", Stream: "s", Children: []string{"a", "b"}, Reason: "r", Offences: 1, CleanMs: 10000},
	NodeReleased{Node: "p", CleanMs: 10000, Offences: 1},
	ReportSummary{Reports: 1, Lossy: 2, Nodes: 3, Streams: 4, Attached: 5, Orphans: 6, Depth: 7},

	RelayReady{Control: "127.0.0.1:0", Probe: "127.0.0.1:0", Node: "a", Server: "127.0.0.1:0", Willing: true, Capacity: 4, Version: "v1.2.3"},
	ServerLink{State: "connected", Server: "127.0.0.1:0", Node: "a", Recovery: "reconnect", Code: "c"},
	Joined{Stream: "s", Parent: "p", Upstream: "rtsp://h/s", Level: 1, Score: 1.5, Candidates: 3, Handover: true},
	Fallback{Stream: "s", Reason: "r"},
	Reconnect{Stream: "s", Reason: "r", Target: "t", Parent: "p"},
	Improved{Stream: "s", From: "a", To: "b", FromMs: 80.5, ToMs: 12.25, Level: 2, Displace: true},
	Drain{Reason: "operator"},
	Left{Stream: "s", Reason: "idle"},
	LeftOverlay{Streams: []string{"s", "t"}},

	MediatorReady{RTSP: "127.0.0.1:0", Resolver: "ocm", Publish: true, AllowOrigin: "any", MaxConns: 1000, RTP: "127.0.0.1:0", RTCP: "127.0.0.1:0", TestSource: "rtsp://127.0.0.1:0/test", Version: "v1.2.3"},
	Publisher{Path: "/p", State: "left", Packets: 7},
	Redirect{Stream: "s", To: "rtsp://h/s", Node: "b"},
	Upstream{Stream: "s", State: "playing", Upstream: "rtsp://h/s", Node: "b", Reason: "r"},
	StreamStats{Stream: "/test", Kind: "test", Readers: 1, PacketsIn: 2, PacketsOut: 3, Lost: 4, BitrateBPS: 5},
	StreamStats{Stream: "s", Kind: "relay", Readers: 1, PacketsIn: 2, PacketsOut: 3, Lost: 4, BitrateBPS: 5,
		RelayCounters: &RelayCounters{Upstream: "rtsp://h/s", PacketsForwarded: 6, Duplicates: 7, Switches: 8}},
	Conns{Open: 1, MaxConns: 2, Refused: 3, SilentClosed: 4, AcceptErrors: 5},

	FanoutReady{From: "127.0.0.1:0", To: []string{"udp://127.0.0.1:0"}, SDP: "/tmp/x.sdp", Version: "v1.2.3"},
	SDP{Path: "/tmp/x.sdp"},
	FanoutStats{In: fanoutapi.InStats{Packets: 1, Bytes: 2}, Drops: 3, Outputs: 1, Out: []fanoutapi.OutStats{{To: "udp://127.0.0.1:0", Packets: 1}}},
	FanoutStats{In: fanoutapi.InStats{Packets: 1}, Drops: 3, Outputs: 900, Total: &fanoutapi.OutTotals{Packets: 9, WithDrops: 1}, Worst: []fanoutapi.OutStats{{To: "udp://127.0.0.1:0", Drops: 2}}},
	Reply{fanoutapi.Reply{Op: "add", ID: json.RawMessage(`7`), OK: true, To: "udp://127.0.0.1:0", Stats: &fanoutapi.Stats{Drops: 1}, Error: "e"}},
	ReadProgress{ReadCounts{URL: "rtsp://h/s", Packets: 1, Frames: 2, Lost: 3, Renumbered: 4, FirstPacketMs: 1.25}},
	ReadSummary{ReadCounts{URL: "rtsp://h/s", Packets: 1, Frames: 2, Lost: 3, Renumbered: 4, FirstPacketMs: 1.25}},
	FloorReady{Addr: "127.0.0.1:0"},
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	w.now = func() time.Time { return at }
	named, types := map[string]bool{}, map[reflect.Type]bool{}
	for _, e := range samples {
		named[e.EventName()], types[reflect.TypeOf(e)] = true, true
		buf.Reset()
		w.Emit(e)
		line := buf.Bytes()
		if bytes.Count(line, []byte("\n")) != 1 || !bytes.HasSuffix(line, []byte("\n")) {
			t.Fatalf("%T: not one line: %q", e, line)
		}
		got, when, err := DecodeTime(line)
		if err != nil {
			t.Fatalf("%T: decode %s: %v", e, line, err)
		}
		if !reflect.DeepEqual(got, e) {
			t.Errorf("%T: round trip\n got %#v\nwant %#v\nline %s", e, got, e, line)
		}
		if !when.Equal(at) {
			t.Errorf("%T: time %v, want %v", e, when, at)
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatal(err)
		}
		if m["event"] != e.EventName() {
			t.Errorf("%T: \"event\" is %v, want %q", e, m["event"], e.EventName())
		}
	}
	// Every registered type has a sample, and every type under a shared
	// name has its own key.
	registered := 0
	for _, ks := range kinds {
		registered += len(ks)
	}
	if registered != len(types) {
		t.Errorf("%d event types registered, %d have a sample", registered, len(types))
	}
	for name, ks := range kinds {
		if !named[name] {
			t.Errorf("event %q has no sample", name)
		}
		if len(ks) > 1 {
			for _, k := range ks {
				if k.key == "" {
					t.Errorf("event %q: a type shares the name without a key", name)
				}
			}
		}
	}
}

// TestShapes pins lines whose shape is not plain struct tags, and a nil
// Writer.
func TestShapes(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	w.now = func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }
	for _, tt := range []struct {
		e    Event
		want string
	}{
		{NewFanoutStats(fanoutapi.Summary{Outputs: 0, Out: []fanoutapi.OutStats{}}),
			`{"event":"stats","time":"2026-01-02T03:04:05Z","in":IN,"drops":0,"outputs":0,"out":[]}`},
		{NewFanoutStats(fanoutapi.Summary{Outputs: 2000}),
			`{"event":"stats","time":"2026-01-02T03:04:05Z","in":IN,"drops":0,"outputs":2000,"out_total":{"packets":0,"bytes":0,"drops":0,"errors":0,"queued":0,"with_drops":0,"with_errors":0},"worst":[]}`},
		{StreamStats{Stream: "/t", Kind: "test"},
			`{"event":"stats","time":"2026-01-02T03:04:05Z","stream":"/t","kind":"test","readers":0,"packets_in":0,"packets_out":0,"lost":0,"bitrate_bps":0}`},
		{StreamStats{Stream: "s", Kind: "relay", RelayCounters: &RelayCounters{}},
			`{"event":"stats","time":"2026-01-02T03:04:05Z","stream":"s","kind":"relay","readers":0,"packets_in":0,"packets_out":0,"lost":0,"bitrate_bps":0,"packets_forwarded":0,"duplicates":0,"switches":0}`},
		{Reply{fanoutapi.Reply{Error: "a <b> & c"}},
			`{"event":"reply","time":"2026-01-02T03:04:05Z","ok":false,"error":"a <b> & c"}`},
		{LeftOverlay{},
			`{"event":"left","time":"2026-01-02T03:04:05Z","streams":null}`},
	} {
		buf.Reset()
		w.Emit(tt.e)
		in, _ := json.Marshal(fanoutapi.InStats{})
		if got, want := strings.TrimSpace(buf.String()), strings.Replace(tt.want, "IN", string(in), 1); got != want {
			t.Errorf("%T:\n got %s\nwant %s", tt.e, got, want)
		}
	}
	var nw *Writer
	nw.Emit(Drain{})
	nw.Write(1)
}

func TestDecodeErrors(t *testing.T) {
	for _, tt := range []struct {
		line, want string
	}{
		{`not json`, "invalid character"},
		{``, "unexpected end"},
		{`[1,2]`, "cannot unmarshal array"},
		{`{"node":"a"}`, `no "event" name`},
		{`{"event":7}`, `no "event" name`},
		{`{"event":"no_such_thing","time":"2026-01-02T03:04:05Z"}`, `unknown event "no_such_thing"`},
		{`{"event":"node_failed","time":"yesterday","node":"a"}`, "node_failed event: time"},
		{`{"event":"node_failed","node":7}`, "node_failed event"},
		{`{"event":"node_failed","node":"a","nodes":"b"}`, `unknown field "nodes"`},
		{`{"event":"ready","where":"x"}`, `unknown field`},
	} {
		_, err := Decode([]byte(tt.line))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Decode(%q) = %v, want an error with %q", tt.line, err, tt.want)
		}
	}
	if _, err := Decode([]byte(`{"event":"nope"}`)); !errors.Is(err, ErrUnknown) {
		t.Errorf("unknown name: %v, want ErrUnknown", err)
	}
}

func FuzzDecode(f *testing.F) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, e := range samples {
		w.Emit(e)
	}
	for _, l := range bytes.Split(buf.Bytes(), []byte("\n")) {
		f.Add(l)
	}
	f.Add([]byte(`{"event":"ready"}`))
	f.Add([]byte(`{"event":"stats","stream":"s","in":{}}`))
	f.Add([]byte(`{"event":"left","stream":"s","streams":["s"]}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := Decode(line)
		if err != nil {
			if e != nil {
				t.Fatalf("an error and an event: %v %#v", err, e)
			}
			return
		}
		// What decodes encodes, and decodes again to the same value.
		var out bytes.Buffer
		NewWriter(&out).Emit(e)
		again, err := Decode(out.Bytes())
		if err != nil {
			t.Fatalf("re-decoding %s: %v", out.Bytes(), err)
		}
		if !reflect.DeepEqual(again, e) {
			t.Fatalf("%T: %#v then %#v", e, e, again)
		}
	})
}

// TestTee: a tee sees every emitted line as written, in order, until it
// is removed.
func TestTee(t *testing.T) {
	var buf bytes.Buffer
	w := NewWriter(&buf)
	var names []string
	var lines bytes.Buffer
	w.Tee(func(name string, line []byte) { names = append(names, name); lines.Write(line) })
	w.Emit(DrainSent{Node: "a"})
	w.Emit(PolicyChanged{From: "a", To: "b"})
	w.Tee(nil)
	w.Emit(DrainSent{Node: "b"})
	if want := []string{"drain_sent", "policy_changed"}; !reflect.DeepEqual(names, want) {
		t.Errorf("tee saw %v, want %v", names, want)
	}
	if first2 := strings.Join(strings.SplitAfter(buf.String(), "\n")[:2], ""); lines.String() != first2 {
		t.Errorf("tee lines %q, written %q", lines.String(), first2)
	}
	var nw *Writer
	nw.Tee(func(string, []byte) {}) // a nil Writer ignores it
}
