package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// --sim-only at a small size writes the JSON with the simulator's keys
// (and without the load's), the Markdown saying the load part did not
// run, and the plot.
func TestScaleSimOnly(t *testing.T) {
	dir := t.TempDir()
	js, md, svg := filepath.Join(dir, "s.json"), filepath.Join(dir, "s.md"), filepath.Join(dir, "s.svg")
	o, err := parseFlags([]string{"--sim-only", "--sim-relays", "200", "--sim-sweep", "50,200",
		"--islands", "6", "--islands-relays", "100", "--islands-sample", "3", "--sim-adapt", "2", "--out", js, "--md", md, "--svg", svg}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(context.Background(), o, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(js)
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]json.RawMessage
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"default", "default_at_join", "default_without_adaptation", "random", "recovery", "sweep", "sim_relays", "islands"} {
		if _, ok := rep[k]; !ok {
			t.Errorf("no %q in the report", k)
		}
	}
	if _, ok := rep["joins_per_s"]; ok {
		t.Errorf("load keys in a --sim-only report")
	}
	var def struct {
		AvgDepth    float64 `json:"avg_depth"`
		MaxDepth    int     `json:"max_depth"`
		AvgStretch  float64 `json:"avg_stretch"`
		CrossRegion float64 `json:"cross_region_edges"`
	}
	if err := json.Unmarshal(rep["default"], &def); err != nil || def.AvgDepth <= 0 || def.MaxDepth <= 0 ||
		def.AvgStretch < 1 || def.CrossRegion < 0 || def.CrossRegion > 1 {
		t.Errorf("default: %+v %v", def, err)
	}
	m, _ := os.ReadFile(md)
	for _, want := range []string{"Not run in this report", "| default, after 2 min |", "| minutes | avg stretch |", "| repair |", "| gradual |", "scale.svg",
		"Islands: 6 regional servers", "3 of the 6 islands are simulated", "| end to end |"} {
		if !strings.Contains(string(m), want) {
			t.Errorf("markdown has no %q:\n%s", want, m)
		}
	}
	if s, _ := os.ReadFile(svg); !bytes.Contains(s, []byte("<polyline")) {
		t.Errorf("svg: %s", s)
	}
	t.Logf("\n%s", m)
}

func TestScaleSimFlags(t *testing.T) {
	for _, args := range [][]string{{"--sim-sweep", "100,x"}, {"--sim-relays", "0"}, {"--sim-sweep", "5"},
		{"--islands", "-1"}, {"--islands", "3", "--islands-relays", "2"}, {"--sim-adapt", "0"}, {"--sim-adapt", "NaN"}} {
		if _, err := parseFlags(args, io.Discard); err == nil {
			t.Errorf("%q accepted", args)
		}
	}
	if o, err := parseFlags([]string{"--sim-sweep", ""}, io.Discard); err != nil || o.simSweep != nil {
		t.Errorf("empty sweep: %v %v", o.simSweep, err)
	}
}
