package fanout

import (
	"fmt"
	"testing"
)

// numbered takes count packets from p, their n set to first, first+1, ...
func numbered(p *pool, first, count int) []*packet {
	var pkts []*packet
	for i := range count {
		pk := p.get()
		pk.n = first + i
		pkts = append(pkts, pk)
	}
	return pkts
}

func TestQueueDropsOldestAndCountsReferences(t *testing.T) {
	p := newPool(16, 8)
	q := newQueue(3)
	pkts := numbered(p, 1, 5)
	if !q.push(pkts[:2]) {
		t.Error("push to an empty queue should report it was empty")
	}
	if q.push(pkts[2:]) {
		t.Error("push to a non-empty queue reported empty")
	}
	for _, pk := range pkts { // the producer's own references
		pk.release()
	}
	if n, drops := q.state(); n != 3 || drops != 2 {
		t.Fatalf("queued %d drops %d, want 3 and 2", n, drops)
	}
	if got := len(p.free); got != 2 {
		t.Errorf("%d packets back in the pool, want the 2 dropped", got)
	}
	out := make([]*packet, 2)
	if n := q.pop(out); n != 2 || out[0].n != 3 || out[1].n != 4 {
		t.Fatalf("pop: %d packets, first %d", n, out[0].n)
	}
	for _, pk := range out {
		pk.release()
	}
	q.close()
	if got := len(p.free); got != 5 {
		t.Errorf("%d packets back in the pool after close, want 5", got)
	}
	extra := p.get()
	if q.push([]*packet{extra}) {
		t.Error("push to a closed queue reported empty")
	}
	extra.release()
	if got := len(p.free); got != 5 {
		t.Errorf("a closed queue kept a packet: %d in the pool", got)
	}
}

func TestQueueUnpop(t *testing.T) {
	p := newPool(16, 8)
	q := newQueue(4)
	pkts := numbered(p, 0, 6)
	q.push(pkts[:4])
	out := make([]*packet, 3)
	q.pop(out)        // 0 1 2 out, 3 queued
	q.push(pkts[4:6]) // 3 4 5 queued
	q.unpop(out)      // room for one: 2 kept, 0 and 1 dropped
	for _, pk := range pkts {
		pk.release()
	}
	got := make([]*packet, 4)
	n := q.pop(got)
	var ns []int
	for _, pk := range got[:n] {
		ns = append(ns, pk.n)
	}
	if fmt.Sprint(ns) != "[2 3 4 5]" {
		t.Errorf("queue after unpop: %v", ns)
	}
	if _, drops := q.state(); drops != 2 {
		t.Errorf("drops %d, want 2", drops)
	}
	if len(p.free) != 2 {
		t.Errorf("%d packets back in the pool, want the 2 dropped", len(p.free))
	}
}

func TestPoolIsBounded(t *testing.T) {
	p := newPool(16, 2)
	a, b := p.get(), p.get()
	if c := p.get(); c != nil {
		t.Fatal("pool handed out more than its max")
	}
	a.release()
	if c := p.get(); c != a {
		t.Error("released packet not reused")
	}
	_ = b
}
