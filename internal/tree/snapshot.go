package tree

import (
	"math"
	"sort"

	"github.com/ocm-overlay/ocm/internal/api"
)

// The snapshots are the HTTP API's shapes (package api), filled here.

// Tree returns the snapshot of one stream's tree.
func (f *Forest) Tree(stream string) (api.Tree, bool) {
	t := f.streams[stream]
	if t == nil {
		return api.Tree{}, false
	}
	s := api.Tree{Stream: stream, Origin: api.TreeOrigin{Children: sortedKeys(t.origin), Capacity: f.originCap}}
	s.Nodes = make([]api.Member, 0, len(t.members))
	for id, m := range t.members {
		n := f.nodes[id]
		ms := api.Member{
			Node: id, Parent: m.parent, Level: m.level, Children: sortedKeys(m.children),
			Attached: t.attached(id), PendingParent: m.pending, Leaving: m.leaving,
			Reserved: f.reserved[Member{stream, id}].parent,
			Readers:  m.stats.Readers, Loss: m.stats.Loss, Bitrate: m.stats.Bitrate,
			PathMs: m.rtt, // its own RTT until the paths are summed below
		}
		if n != nil {
			ms.Clients, ms.Capacity = n.children, n.Capacity
		}
		if ms.Attached && ms.Level > s.Depth {
			s.Depth = ms.Level
		}
		s.Nodes = append(s.Nodes, ms)
	}
	sort.Slice(s.Nodes, func(i, j int) bool {
		a, b := s.Nodes[i], s.Nodes[j]
		if a.Attached != b.Attached {
			return a.Attached
		}
		if a.Level != b.Level {
			return a.Level < b.Level
		}
		return a.Node < b.Node
	})
	// Paths: a parent comes before its attached children (a lower
	// level), so one pass adds each member's RTT to its parent's path
	// (not a walk up per member).
	paths := make(map[string]float64, len(s.Nodes))
	for i := range s.Nodes {
		m := &s.Nodes[i]
		if !m.Attached {
			m.PathMs = 0
			continue
		}
		path := m.PathMs + paths[m.Parent] // the origin's is 0
		paths[m.Node] = path
		m.PathMs = roundMs(path)
	}
	return s, true
}

// Trees returns every stream's tree, by stream.
func (f *Forest) Trees() []api.Tree {
	out := make([]api.Tree, 0, len(f.streams))
	for _, s := range sortedKeys(f.streams) {
		t, _ := f.Tree(s)
		out = append(out, t)
	}
	return out
}

// Streams summarises every stream, by stream.
func (f *Forest) Streams() []api.Stream {
	out := make([]api.Stream, 0, len(f.streams))
	for _, s := range sortedKeys(f.streams) {
		t := f.streams[s]
		sum := api.Stream{Stream: s, Nodes: len(t.members), OriginChildren: len(t.origin)}
		for id, m := range t.members {
			switch {
			case t.attached(id):
				sum.Attached++
				sum.Depth = max(sum.Depth, m.level)
			case m.parent == "":
				sum.Orphans++
				if m.pending != "" {
					sum.Pending++
				}
			}
		}
		out = append(out, sum)
	}
	return out
}

// Node returns one registered node.
func (f *Forest) Node(id string) (api.Node, bool) {
	n := f.nodes[id]
	if n == nil {
		return api.Node{}, false
	}
	s := api.Node{
		ID: id, RTSP: n.RTSP, Probe: n.Probe, Willing: n.Willing, Capacity: n.Capacity, Cores: n.Cores,
		Children: n.children, CPU: n.CPU, Clients: n.Clients, Streams: f.streamsOf(id),
		Quarantined: n.Quarantine != "", QuarantineReason: n.Quarantine,
	}
	if s.Streams == nil {
		s.Streams = []string{}
	}
	if !n.LastReport.IsZero() {
		t := n.LastReport
		s.LastReport = &t
	}
	return s, true
}

// Nodes returns every registered node, by id.
func (f *Forest) Nodes() []api.Node {
	out := make([]api.Node, 0, len(f.nodes))
	for _, id := range sortedKeys(f.nodes) {
		n, _ := f.Node(id)
		out = append(out, n)
	}
	return out
}

// NumNodes returns how many nodes are registered.
func (f *Forest) NumNodes() int { return len(f.nodes) }

// HasNode reports whether id is registered.
func (f *Forest) HasNode(id string) bool { return f.nodes[id] != nil }

// Attached reports whether node is an attached member of stream's tree.
func (f *Forest) Attached(stream, node string) bool {
	t := f.streams[stream]
	return t != nil && t.attached(node)
}

// Level returns node's level in stream's tree, false if not a member.
func (f *Forest) Level(stream, node string) (int, bool) {
	if t := f.streams[stream]; t != nil {
		if m := t.members[node]; m != nil {
			return m.level, true
		}
	}
	return 0, false
}

// StreamsOf returns the streams node is a member of, sorted.
func (f *Forest) StreamsOf(node string) []string { return f.streamsOf(node) }

// Subtree returns node and its descendants in stream's tree, level by
// level (node alone first), nil if node is not a member.
func (f *Forest) Subtree(stream, node string) [][]string {
	t := f.streams[stream]
	if t == nil || t.members[node] == nil {
		return nil
	}
	var out [][]string
	level := []string{node}
	for len(level) > 0 {
		out = append(out, level)
		var next []string
		for _, id := range level {
			next = append(next, sortedKeys(t.members[id].children)...)
		}
		level = next
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// roundMs rounds a latency to 0.1 ms for the API: finer is noise.
func roundMs(ms float64) float64 { return math.Round(ms*10) / 10 }
