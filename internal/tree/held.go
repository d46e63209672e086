package tree

// Slots held under a parent by handovers (reserved) and gradual rebuilds
// (expected) are counted per parent as they are made and given up, so
// counting a parent's taken slots (occupied, taken) costs a map lookup,
// not a walk over every reservation: a gradual rebuild of a large subtree
// keeps thousands, and every candidate of every request during it was
// counted against all of them.

// heldKey is whose slots are counted: a relay's over all streams (its
// capacity is), the origin's per stream.
type heldKey struct{ stream, parent string }

func holdKey(stream, parent string) heldKey {
	if parent != Origin {
		stream = ""
	}
	return heldKey{stream, parent}
}

func (f *Forest) hold(stream, parent string, d int) {
	k := holdKey(stream, parent)
	if f.heldUnder[k] += d; f.heldUnder[k] <= 0 {
		delete(f.heldUnder, k)
	}
}

// setReserved records a handover's reservation for m.
func (f *Forest) setReserved(m Member, r reservation) {
	f.delReserved(m)
	f.reserved[m] = r
	f.hold(m.Stream, r.parent, 1)
}

// delReserved gives up m's reservation, if any.
func (f *Forest) delReserved(m Member) {
	if r, ok := f.reserved[m]; ok {
		delete(f.reserved, m)
		f.hold(m.Stream, r.parent, -1)
	}
}

// setExpected records the slot a gradual rebuild keeps for m.
func (f *Forest) setExpected(m Member, e expectation) {
	f.delExpected(m)
	f.expected[m] = e
	f.hold(m.Stream, e.parent, 1)
}

// delExpected gives up the slot kept for m, if any.
func (f *Forest) delExpected(m Member) {
	if e, ok := f.expected[m]; ok {
		delete(f.expected, m)
		f.hold(m.Stream, e.parent, -1)
	}
}

// held counts the slots under parent reserved by handovers or kept by
// gradual rebuilds for nodes other than joiner (the origin: on stream).
func (f *Forest) held(stream, parent, joiner string) int {
	n := f.heldUnder[holdKey(stream, parent)]
	if n == 0 {
		return 0
	}
	// joiner's own, on stream (the origin) or on any stream (a relay).
	own := func(s string) {
		if r, ok := f.reserved[Member{s, joiner}]; ok && r.parent == parent {
			n--
		}
		if e, ok := f.expected[Member{s, joiner}]; ok && e.parent == parent {
			n--
		}
	}
	if parent == Origin {
		own(stream)
		return n
	}
	for s := range f.streams {
		own(s)
	}
	return n
}
