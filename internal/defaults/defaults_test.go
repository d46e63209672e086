package defaults

import (
	"testing"
	"time"
)

func TestSet(t *testing.T) {
	n, neg, set := 0, -3, 7
	Set(&n, 5)
	Set(&neg, 5)
	Set(&set, 5)
	if n != 5 || neg != 5 || set != 7 {
		t.Errorf("ints: %d %d %d, want 5 5 7", n, neg, set)
	}
	d, dset := time.Duration(0), time.Second
	Set(&d, 2*time.Second)
	Set(&dset, 2*time.Second)
	if d != 2*time.Second || dset != time.Second {
		t.Errorf("durations: %v %v, want 2s 1s", d, dset)
	}
	f, fset := -0.5, 0.25
	Set(&f, 0.9)
	Set(&fset, 0.9)
	if f != 0.9 || fset != 0.25 {
		t.Errorf("floats: %v %v, want 0.9 0.25", f, fset)
	}
	s, sset := "", "x"
	Set(&s, "d")
	Set(&sset, "d")
	if s != "d" || sset != "x" {
		t.Errorf("strings: %q %q, want \"d\" \"x\"", s, sset)
	}
}
