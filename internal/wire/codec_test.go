package wire

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func boolp(b bool) *bool { return &b }

// allBodies holds one valid body of every type.
var allBodies = []Body{
	&Hello{Node: "n1", RTSP: "10.0.0.1:8554", Probe: "10.0.0.1:7072", Willing: true, Capacity: 4, Cores: 8,
		Streams: []Relayed{{Stream: "rtsp://ms:554/live", Parent: OriginID, ParentRTSP: "ms:554", Level: 1}},
		Token:   "s3cret", Agent: "ocm-relay/test"},
	&Welcome{Node: "n1", Recovery: RecoveryRepair, ReportMs: 10000, HeartbeatMs: 2000, HandoverMs: 2000,
		ReconnectStepMs: 500, Server: "ocm-server"},
	&GetCandidates{Stream: "rtsp://ms:554/live", Exclude: []string{"n2", OriginID}, Max: 3},
	&Candidates{Stream: "rtsp://ms:554/live", Candidates: []Candidate{
		{Node: OriginID, RTSP: "ms:554", Level: 0, Clients: 4, Capacity: 4, DisplaceMs: 150},
		{Node: "n2", RTSP: "10.0.0.2:8554", Probe: "10.0.0.2:7072", Level: 1, Clients: 0, Capacity: 3, Cores: 4, CPU: 0.25,
			PathMs: 12.5},
	}},
	&Joined{Stream: "rtsp://ms:554/live", Parent: "n2", Level: 2, RTTMs: 4.25, Displace: true},
	&Left{Stream: "rtsp://ms:554/live"},
	&Report{CPU: 0.5, Willing: boolp(false), Clients: 3, Streams: []StreamReport{
		{Stream: "rtsp://ms:554/live", Parent: "n2", Level: 2, Readers: 3, Loss: 0.01, Bitrate: 4e6, RTTMs: 4.5}}},
	&Heartbeat{},
	&Reconnect{Stream: "rtsp://ms:554/live", Reason: ReasonParentFailed, Target: "n3", TargetRTSP: "10.0.0.3:8554"},
	&Drain{Reason: "operator"},
	&Ack{Level: 2},
	&Error{Code: CodeCycle, Message: "n2 is a descendant of n1"},
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	for _, b := range allBodies {
		t.Run(b.Type(), func(t *testing.T) {
			line, err := Encode(Msg{ID: 7, Re: 3, Body: b})
			if err != nil {
				t.Fatal(err)
			}
			if strings.ContainsRune(string(line), '\n') {
				t.Fatalf("line contains a newline: %s", line)
			}
			var generic map[string]any
			if err := json.Unmarshal(line, &generic); err != nil {
				t.Fatalf("not JSON: %v: %s", err, line)
			}
			if generic["v"] != float64(1) || generic["type"] != b.Type() || generic["id"] != float64(7) || generic["re"] != float64(3) {
				t.Fatalf("bad envelope: %s", line)
			}
			m, err := Decode(line)
			if err != nil {
				t.Fatalf("decode %s: %v", line, err)
			}
			want := Msg{V: 1, Type: b.Type(), ID: 7, Re: 3, Body: b}
			if !reflect.DeepEqual(m, want) {
				t.Fatalf("round trip:\n got %#v\nwant %#v", m, want)
			}
		})
	}
}

// Body fields must never collide with the envelope's names, or the
// splicing in Encode would produce duplicate keys.
func TestBodyFieldsAvoidEnvelope(t *testing.T) {
	for _, b := range allBodies {
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		for _, k := range []string{"v", "type", "id", "re"} {
			if _, ok := m[k]; ok {
				t.Errorf("%s has a field named %q", b.Type(), k)
			}
		}
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name    string
		line    string
		want    Msg
		wantErr error
	}{
		{"heartbeat", `{"v":1,"type":"heartbeat","id":1}`, Msg{V: 1, Type: "heartbeat", ID: 1, Body: &Heartbeat{}}, nil},
		{"spaces and unknown fields", ` {"v":1, "type":"left","stream":"rtsp://a:1/x","future":[1,2]} `,
			Msg{V: 1, Type: "left", Body: &Left{Stream: "rtsp://a:1/x"}}, nil},
		{"empty", ``, Msg{}, ErrMalformed},
		{"garbage", `hello world`, Msg{}, ErrMalformed},
		{"array", `[1,2,3]`, Msg{}, ErrMalformed},
		{"null", `null`, Msg{}, ErrMalformed},
		{"truncated", `{"v":1,"type":"hello","node":"n`, Msg{}, ErrMalformed},
		{"trailing data", `{"v":1,"type":"heartbeat"} {}`, Msg{}, ErrMalformed},
		{"no version", `{"type":"heartbeat","id":4}`, Msg{Type: "heartbeat", ID: 4}, ErrVersion},
		{"wrong version", `{"v":2,"type":"heartbeat","id":5}`, Msg{V: 2, Type: "heartbeat", ID: 5}, ErrVersion},
		{"version as string", `{"v":"1","type":"heartbeat"}`, Msg{}, ErrMalformed},
		{"no type", `{"v":1,"id":2}`, Msg{V: 1, ID: 2}, ErrMalformed},
		{"unknown type", `{"v":1,"type":"teleport","id":3}`, Msg{V: 1, Type: "teleport", ID: 3}, ErrUnknownType},
		{"negative id", `{"v":1,"type":"heartbeat","id":-1}`, Msg{}, ErrMalformed},
		{"wrong field type", `{"v":1,"type":"hello","id":9,"node":42}`, Msg{V: 1, Type: "hello", ID: 9}, ErrMalformed},
		{"hello without node", `{"v":1,"type":"hello","id":9,"willing":false}`, Msg{V: 1, Type: "hello", ID: 9}, ErrInvalid},
		{"hello willing without rtsp", `{"v":1,"type":"hello","node":"a","willing":true,"capacity":2}`, Msg{V: 1, Type: "hello"}, ErrInvalid},
		{"hello as origin", `{"v":1,"type":"hello","node":"origin"}`, Msg{V: 1, Type: "hello"}, ErrInvalid},
		{"hello negative capacity", `{"v":1,"type":"hello","node":"a","capacity":-1}`, Msg{V: 1, Type: "hello"}, ErrInvalid},
		{"hello bad rtsp", `{"v":1,"type":"hello","node":"a","rtsp":"nohost","willing":true}`, Msg{V: 1, Type: "hello"}, ErrInvalid},
		{"hello own parent", `{"v":1,"type":"hello","node":"a","streams":[{"stream":"s","parent":"a"}]}`, Msg{V: 1, Type: "hello"}, ErrInvalid},
		{"hello duplicate stream", `{"v":1,"type":"hello","node":"a","streams":[{"stream":"s","parent":"b"},{"stream":"s","parent":"c"}]}`, Msg{V: 1, Type: "hello"}, ErrInvalid},
		{"node id with control char", `{"v":1,"type":"hello","node":"a\u0001"}`, Msg{V: 1, Type: "hello"}, ErrInvalid},
		{"passive hello", `{"v":1,"type":"hello","node":"p","willing":false}`, Msg{V: 1, Type: "hello", Body: &Hello{Node: "p"}}, nil},
		{"joined without parent", `{"v":1,"type":"joined","stream":"s"}`, Msg{V: 1, Type: "joined"}, ErrInvalid},
		{"report loss above 1", `{"v":1,"type":"report","streams":[{"stream":"s","loss":1.5}]}`, Msg{V: 1, Type: "report"}, ErrInvalid},
		{"report cpu negative", `{"v":1,"type":"report","cpu":-0.1}`, Msg{V: 1, Type: "report"}, ErrInvalid},
		{"error without code", `{"v":1,"type":"error","re":3}`, Msg{V: 1, Type: "error", Re: 3}, ErrInvalid},
		{"welcome negative handover", `{"v":1,"type":"welcome","node":"a","recovery":"repair","report_ms":1,"heartbeat_ms":1,"handover_ms":-1}`,
			Msg{V: 1, Type: "welcome"}, ErrInvalid},
		{"welcome of an older server", `{"v":1,"type":"welcome","node":"a","recovery":"gradual","report_ms":1,"heartbeat_ms":2}`,
			Msg{V: 1, Type: "welcome", Body: &Welcome{Node: "a", Recovery: "gradual", ReportMs: 1, HeartbeatMs: 2}}, nil},
		{"huge number", `{"v":1e400,"type":"heartbeat"}`, Msg{}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode([]byte(tt.line))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				tt.want.Body = nil
			} else if err != nil {
				t.Fatalf("unexpected error %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestEncodeRejects(t *testing.T) {
	tests := []struct {
		name string
		m    Msg
		want error
	}{
		{"no body", Msg{}, ErrInvalid},
		{"invalid body", Msg{Body: &Joined{Stream: "s"}}, ErrInvalid},
		{"wrong version", Msg{V: 3, Body: &Heartbeat{}}, ErrVersion},
		{"type mismatch", Msg{Type: TypeLeft, Body: &Heartbeat{}}, ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Encode(tt.m); !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestEncodeNoHTMLEscaping(t *testing.T) {
	line, err := Encode(Msg{Body: &Error{Code: "x", Message: "a<b>&c"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(line), "a<b>&c") {
		t.Fatalf("escaped: %s", line)
	}
}

func TestCheckToken(t *testing.T) {
	tests := []struct {
		want, got string
		ok        bool
	}{
		{"", "", true},
		{"", "anything", true},
		{"s3cret", "s3cret", true},
		{"s3cret", "s3cres", false},
		{"s3cret", "", false},
		{"s3cret", "s3cret-and-more", false},
	}
	for _, tt := range tests {
		if got := CheckToken(tt.want, tt.got); got != tt.ok {
			t.Errorf("CheckToken(%q, %q) = %v, want %v", tt.want, tt.got, got, tt.ok)
		}
	}
}

func TestWelcomeDurations(t *testing.T) {
	w := Welcome{ReportMs: 1500, HeartbeatMs: 250, HandoverMs: 2000, ReconnectStepMs: 100}
	if w.Report().Milliseconds() != 1500 || w.Heartbeat().Milliseconds() != 250 ||
		w.Handover().Milliseconds() != 2000 || w.ReconnectStep().Milliseconds() != 100 {
		t.Fatalf("got %v %v %v %v", w.Report(), w.Heartbeat(), w.Handover(), w.ReconnectStep())
	}
	for _, tt := range []struct {
		recovery string
		level    int
		want     time.Duration
	}{
		{RecoveryRepair, 3, 0},
		{RecoveryDrop, 3, 0},
		{RecoveryReconnect, 3, time.Second},
		{RecoveryGradual, 3, time.Second + 300*time.Millisecond},
		{RecoveryGradual, 0, time.Second + 100*time.Millisecond},
	} {
		w.Recovery = tt.recovery
		if got := w.StallWait(tt.level); got != tt.want {
			t.Errorf("%s level %d: stall wait %v, want %v", tt.recovery, tt.level, got, tt.want)
		}
		if w.WaitsForReconnect() != (tt.want > 0) {
			t.Errorf("%s: WaitsForReconnect %v", tt.recovery, w.WaitsForReconnect())
		}
	}
}
