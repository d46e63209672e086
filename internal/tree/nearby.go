package tree

import (
	"math/bits"
	"net/netip"
	"slices"
)

// Locality. The ranking of Candidates knows nothing of where a relay is,
// so in a tree spread over regions most of the k best parents a requester
// is offered are far from it, and the relay's RTT probes can only choose
// the least bad of them. The one hint of place the server has for free is
// the address each relay connects from (NodeInfo.Addr): relays sharing a
// long prefix of it are, more often than not, on the same network, ISP
// or site. With SetNearby(n), Candidates adds to its k best up to n
// offerable members sharing a long prefix with the requester (its /24,
// else its /16; IPv6 /48, else /32; the longest shared prefix first
// among those it looks at), so the relay gets a close parent to measure;
// its probes still decide. The cost is bounded (nearScan): about 10 us
// more per request with 10,000 relays in one /16
// (BenchmarkCandidatesNearby10k).
//
// Loopback, unspecified and link-local addresses carry no hint (a lab
// on one host would put every relay in one bucket).

// The index's buckets, by address family: a long prefix (a site, an
// ISP's point of presence) scanned first, then a short one (an ISP's
// block), the shortest shared prefix counted as near.
var nearBits = [2][2]int{{24, 16}, {48, 32}} // [v6][level]

// nearScan bounds the members looked at in each bucket per request, so a
// bucket of thousands (one big ISP) costs what a small one does; the scan
// starts at a rotating place, so requesters of one bucket are offered
// different members of it.
const nearScan = 64

// SetNearby sets how many near candidates Candidates adds to its k best
// (0: none).
func (f *Forest) SetNearby(n int) { f.nearby = max(n, 0) }

// nearKey is addr's bucket at level (0 long, 1 short); the invalid
// prefix if addr gives no hint.
func nearKey(addr netip.Addr, level int) netip.Prefix {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.IsLoopback() || addr.IsUnspecified() || addr.IsLinkLocalUnicast() {
		return netip.Prefix{}
	}
	v6 := 1
	if addr.Is4() {
		v6 = 0
	}
	p, _ := addr.Prefix(nearBits[v6][level])
	return p
}

// sharedBits is the length of the prefix a and b share.
func sharedBits(a, b netip.Addr) int {
	a, b = a.Unmap(), b.Unmap()
	if a.Is4() != b.Is4() {
		return 0
	}
	x, y := a.As16(), b.As16()
	n := 0
	for i := range x {
		if d := x[i] ^ y[i]; d != 0 {
			n += bits.LeadingZeros8(d)
			break
		}
		n += 8
	}
	if a.Is4() {
		n -= 96
	}
	return n
}

// nearIndex adds m to its buckets.
func (t *tree) nearIndex(m *member) {
	for l := range m.nearKey {
		k := nearKey(m.node.Addr, l)
		m.nearKey[l] = k
		if !k.IsValid() {
			continue
		}
		if t.near == nil {
			t.near = map[netip.Prefix][]*member{}
		}
		b := t.near[k]
		m.nearIdx[l] = len(b)
		t.near[k] = append(b, m)
	}
}

// nearUnindex takes m out of its buckets.
func (t *tree) nearUnindex(m *member) {
	for l, k := range m.nearKey {
		if !k.IsValid() {
			continue
		}
		b := t.near[k]
		last := b[len(b)-1]
		b[m.nearIdx[l]], last.nearIdx[l] = last, m.nearIdx[l]
		b[len(b)-1] = nil
		if b = b[:len(b)-1]; len(b) == 0 {
			delete(t.near, k)
		} else {
			t.near[k] = b
		}
	}
}

// nearCandidates returns up to f.nearby members near requester as
// candidates: from its long-prefix bucket, then its short-prefix one (at
// most nearScan members of each), the longest shared prefix first, then
// in the candidates' order; none already in have (nor home, which the
// caller offers).
func (f *Forest) nearCandidates(t *tree, stream, requester string, self *member, ownPromise string,
	exclude []string, have []Candidate, home string) []Candidate {
	rn := f.nodes[requester]
	if f.nearby <= 0 || rn == nil || len(t.near) == 0 {
		return nil
	}
	var best []Candidate
	var bestBits []int
	shared := 0
	// A member that cannot beat the n-th so far is dropped after the O(1)
	// tests, before the walks up the tree (as in Candidates).
	prune := func(c *Candidate) bool {
		if len(best) < f.nearby {
			return false
		}
		w := len(best) - 1
		return shared < bestBits[w] || shared == bestBits[w] && !better(c, &best[w])
	}
	for l := range 2 {
		k := nearKey(rn.Addr, l)
		b := t.near[k]
		if !k.IsValid() || len(b) == 0 || len(best) >= f.nearby {
			continue
		}
		t.nearTurn++
		start := int(t.nearTurn % uint64(len(b)))
		for j := range min(len(b), nearScan) {
			m := b[(start+j)%len(b)]
			if m.id == home || m.id == requester || haveID(have, m.id) || haveID(best, m.id) {
				continue
			}
			shared = sharedBits(rn.Addr, m.node.Addr)
			c, ok := f.candidateOf(t, stream, m, requester, self, ownPromise, exclude, prune)
			if !ok {
				continue
			}
			i := 0
			for i < len(best) && (bestBits[i] > shared || bestBits[i] == shared && better(&best[i], &c)) {
				i++
			}
			best = slices.Insert(best, i, c)
			bestBits = slices.Insert(bestBits, i, shared)
			if len(best) > f.nearby {
				best, bestBits = best[:f.nearby], bestBits[:f.nearby]
			}
		}
	}
	return best
}

func haveID(cs []Candidate, id string) bool {
	for i := range cs {
		if cs[i].ID == id {
			return true
		}
	}
	return false
}
