package tree

import (
	"math/bits"
	"net/netip"
)

// Locality. The ranking of Candidates knows nothing of where a relay is,
// so in a tree spread over regions most of the k best parents a requester
// is offered are far from it, and the relay's RTT probes can only choose
// the least bad of them. The one hint of place the server has for free is
// the address each relay connects from (NodeInfo.Addr): relays sharing a
// long prefix of it are, more often than not, on the same network, ISP
// or site. With SetNearby(n), Candidates adds to its k best up to n
// offerable members sharing the longest prefix with the requester (at
// least /16 for IPv4, /32 for IPv6, the index's buckets), so the relay
// gets a close parent to measure; its probes still decide.
//
// Loopback, unspecified and link-local addresses carry no hint (a lab
// on one host would put every relay in one bucket).

// nearBits is the shortest shared prefix counted as near, by address
// length: the bucket a member is indexed under.
const (
	nearBits4 = 16
	nearBits6 = 32
)

// SetNearby sets how many near candidates Candidates adds to its k best
// (0: none).
func (f *Forest) SetNearby(n int) { f.nearby = max(n, 0) }

// nearKey is the bucket of addr ("" prefix, invalid, if it gives no hint).
func nearKey(addr netip.Addr) netip.Prefix {
	addr = addr.Unmap()
	if !addr.IsValid() || addr.IsLoopback() || addr.IsUnspecified() || addr.IsLinkLocalUnicast() {
		return netip.Prefix{}
	}
	n := nearBits6
	if addr.Is4() {
		n = nearBits4
	}
	p, _ := addr.Prefix(n)
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

// nearIndex adds m to its bucket.
func (t *tree) nearIndex(m *member) {
	m.nearKey = nearKey(m.node.Addr)
	if !m.nearKey.IsValid() {
		return
	}
	if t.near == nil {
		t.near = map[netip.Prefix][]*member{}
	}
	b := t.near[m.nearKey]
	m.nearIdx = len(b)
	t.near[m.nearKey] = append(b, m)
}

// nearUnindex takes m out of its bucket.
func (t *tree) nearUnindex(m *member) {
	if !m.nearKey.IsValid() {
		return
	}
	b := t.near[m.nearKey]
	last := b[len(b)-1]
	b[m.nearIdx], last.nearIdx = last, m.nearIdx
	b[len(b)-1] = nil
	if b = b[:len(b)-1]; len(b) == 0 {
		delete(t.near, m.nearKey)
	} else {
		t.near[m.nearKey] = b
	}
}

// nearCandidates returns up to f.nearby members of requester's bucket as
// candidates, the longest shared prefix first, then in the candidates'
// order; none already in have (nor home, which the caller offers).
func (f *Forest) nearCandidates(t *tree, stream, requester string, self *member, ownPromise string,
	exclude []string, have []Candidate, home string) []Candidate {
	rn := f.nodes[requester]
	if f.nearby <= 0 || rn == nil {
		return nil
	}
	key := nearKey(rn.Addr)
	if !key.IsValid() {
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
	for _, m := range t.near[key] {
		if m.id == home || m.id == requester || haveID(have, m.id) {
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
		best = append(best[:i], append([]Candidate{c}, best[i:]...)...)
		bestBits = append(bestBits[:i], append([]int{shared}, bestBits[i:]...)...)
		if len(best) > f.nearby {
			best, bestBits = best[:f.nearby], bestBits[:f.nearby]
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
