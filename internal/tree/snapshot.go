package tree

import (
	"sort"
	"time"
)

// TreeSnapshot is one stream's tree as the HTTP API shows it.
type TreeSnapshot struct {
	Stream string           `json:"stream"`
	Origin OriginSnapshot   `json:"origin"`
	Nodes  []MemberSnapshot `json:"nodes"` // attached first, by level then id; then detached
	Depth  int              `json:"depth"` // deepest attached level
}

// OriginSnapshot is the origin's place in a tree.
type OriginSnapshot struct {
	Children []string `json:"children"`
	Capacity int      `json:"capacity"`
}

// MemberSnapshot is one node in one stream's tree.
type MemberSnapshot struct {
	Node          string   `json:"node"`
	Parent        string   `json:"parent,omitempty"` // empty for an orphan
	Level         int      `json:"level"`            // relative while detached
	Children      []string `json:"children"`
	Clients       int      `json:"clients"` // children over all streams
	Capacity      int      `json:"capacity"`
	Attached      bool     `json:"attached"`
	PendingParent string   `json:"pending_parent,omitempty"`
	Leaving       bool     `json:"leaving,omitempty"`         // handing its children over
	Reserved      string   `json:"reserved_parent,omitempty"` // parent a handover promised it
	// From the node's last report, zero before one.
	Readers int     `json:"readers"`
	Loss    float64 `json:"loss"`
	Bitrate float64 `json:"bitrate"`
}

// NodeSnapshot is one registered node.
type NodeSnapshot struct {
	ID         string     `json:"id"`
	RTSP       string     `json:"rtsp,omitempty"`
	Probe      string     `json:"probe,omitempty"`
	Willing    bool       `json:"willing"`
	Capacity   int        `json:"capacity"`
	Cores      int        `json:"cores,omitempty"`
	Children   int        `json:"children"` // over all streams
	CPU        float64    `json:"cpu"`
	Clients    int        `json:"clients"` // reported readers
	LastReport *time.Time `json:"last_report,omitempty"`
	Streams    []string   `json:"streams"`
	// Quarantined nodes are not offered as parents; the reason says why
	// and until when (see Forest.Quarantine).
	Quarantined      bool   `json:"quarantined"`
	QuarantineReason string `json:"quarantine_reason,omitempty"`
}

// StreamSummary is one line of the stream list.
type StreamSummary struct {
	Stream         string `json:"stream"`
	Nodes          int    `json:"nodes"`
	Attached       int    `json:"attached"`
	Orphans        int    `json:"orphans"`
	Pending        int    `json:"pending"`
	Depth          int    `json:"depth"`
	OriginChildren int    `json:"origin_children"`
}

// Tree returns the snapshot of one stream's tree.
func (f *Forest) Tree(stream string) (TreeSnapshot, bool) {
	t := f.streams[stream]
	if t == nil {
		return TreeSnapshot{}, false
	}
	s := TreeSnapshot{Stream: stream, Origin: OriginSnapshot{Children: sortedKeys(t.origin), Capacity: f.originCap}}
	s.Nodes = make([]MemberSnapshot, 0, len(t.members))
	for id, m := range t.members {
		n := f.nodes[id]
		ms := MemberSnapshot{
			Node: id, Parent: m.parent, Level: m.level, Children: sortedKeys(m.children),
			Attached: t.attached(id), PendingParent: m.pending, Leaving: m.leaving,
			Reserved: f.reserved[Member{stream, id}].parent,
			Readers:  m.stats.Readers, Loss: m.stats.Loss, Bitrate: m.stats.Bitrate,
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
	return s, true
}

// Trees returns every stream's tree, by stream.
func (f *Forest) Trees() []TreeSnapshot {
	out := make([]TreeSnapshot, 0, len(f.streams))
	for _, s := range sortedKeys(f.streams) {
		t, _ := f.Tree(s)
		out = append(out, t)
	}
	return out
}

// Streams summarises every stream, by stream.
func (f *Forest) Streams() []StreamSummary {
	out := make([]StreamSummary, 0, len(f.streams))
	for _, s := range sortedKeys(f.streams) {
		t := f.streams[s]
		sum := StreamSummary{Stream: s, Nodes: len(t.members), OriginChildren: len(t.origin)}
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
func (f *Forest) Node(id string) (NodeSnapshot, bool) {
	n := f.nodes[id]
	if n == nil {
		return NodeSnapshot{}, false
	}
	s := NodeSnapshot{
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
func (f *Forest) Nodes() []NodeSnapshot {
	out := make([]NodeSnapshot, 0, len(f.nodes))
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
