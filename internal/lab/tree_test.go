package lab

import (
	"slices"
	"testing"

	"github.com/ocm-overlay/ocm/internal/api"
)

func TestTreeBelow(t *testing.T) {
	var tr Tree
	add := func(node, parent string, attached bool) {
		tr.Nodes = append(tr.Nodes, api.Member{Node: node, Parent: parent, Attached: attached})
	}
	add("R", "origin", true)
	add("a", "R", true)
	add("b", "R", true)
	add("c", "a", true)
	add("d", "c", true)
	add("x", "", false)
	if got, want := tr.Below("R"), []string{"a", "b", "c", "d"}; !slices.Equal(got, want) {
		t.Fatalf("below R: %v, want %v", got, want)
	}
	if tr.Attached() != 5 {
		t.Errorf("attached %d, want 5", tr.Attached())
	}
	if d := tr.Descendants(); d["R"] != 4 || d["c"] != 1 || d["x"] != 0 {
		t.Errorf("descendants %v", d)
	}
}
