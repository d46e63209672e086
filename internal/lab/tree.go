package lab

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
)

// Tree is one stream's tree as ocm-server's API returns it: the API's own
// type, so the tests and bench read what the server writes.
type Tree struct{ api.Tree }

// Tree fetches a stream's tree from the server's API.
func (s *Server) Tree(ctx context.Context, stream string) (Tree, error) {
	t, _, err := s.API.Tree(ctx, stream)
	return Tree{t}, err
}

// WaitTree polls the tree until ok accepts it (nil error), or limit passes
// or ctx ends; it returns the last tree it read either way (the zero Tree
// if none) and ok's last complaint.
func (s *Server) WaitTree(ctx context.Context, stream string, limit time.Duration, ok func(Tree) error) (Tree, error) {
	deadline := time.Now().Add(limit)
	var last Tree
	var lastErr error
	for {
		t, err := s.Tree(ctx, stream)
		if err == nil {
			last = t
			if err = ok(t); err == nil {
				return t, nil
			}
		}
		lastErr = err
		if time.Now().After(deadline) {
			return last, fmt.Errorf("tree of %s not as expected within %v: %w", stream, limit, lastErr)
		}
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Check says what is wrong with the tree, if anything: every node in want
// present and attached, none over capacity, levels consistent.
func (t Tree) Check(want []string) error {
	if len(t.Origin.Children) > t.Origin.Capacity {
		return fmt.Errorf("origin has %d children, capacity %d", len(t.Origin.Children), t.Origin.Capacity)
	}
	level := map[string]int{"origin": 0}
	for _, n := range t.Nodes {
		level[n.Node] = n.Level
	}
	seen := map[string]bool{}
	for _, n := range t.Nodes {
		seen[n.Node] = true
		if !n.Attached {
			return fmt.Errorf("%s is detached", n.Node)
		}
		if len(n.Children) > n.Capacity {
			return fmt.Errorf("%s has %d children, capacity %d", n.Node, len(n.Children), n.Capacity)
		}
		if pl, ok := level[n.Parent]; !ok || n.Level != pl+1 {
			return fmt.Errorf("%s at level %d under %s (level %d, known %v)", n.Node, n.Level, n.Parent, pl, ok)
		}
	}
	if len(t.Nodes) != len(want) {
		return fmt.Errorf("tree has %d nodes, want %d", len(t.Nodes), len(want))
	}
	for _, w := range want {
		if !seen[w] {
			return fmt.Errorf("%s missing from the tree", w)
		}
	}
	return nil
}

// Parents returns child -> parent for every attached node.
func (t Tree) Parents() map[string]string {
	e := map[string]string{}
	for _, n := range t.Nodes {
		if n.Attached && n.Parent != "" {
			e[n.Node] = n.Parent
		}
	}
	return e
}

// Attached counts the attached nodes.
func (t Tree) Attached() int { return len(t.Parents()) }

// Edges is the set of parent->child edges of every node, the origin's
// included.
func (t Tree) Edges() map[[2]string]bool {
	out := map[[2]string]bool{}
	for _, n := range t.Nodes {
		out[[2]string{n.Parent, n.Node}] = true
	}
	return out
}

func (t Tree) children() map[string][]string {
	children := map[string][]string{"origin": t.Origin.Children}
	for _, n := range t.Nodes {
		children[n.Node] = n.Children
	}
	return children
}

// Below lists node's attached descendants, by the parent links, sorted.
func (t Tree) Below(node string) []string {
	kids := map[string][]string{}
	for c, p := range t.Parents() {
		kids[p] = append(kids[p], c)
	}
	var out []string
	queue := []string{node}
	for len(queue) > 0 {
		n := queue[0]
		queue = queue[1:]
		out = append(out, kids[n]...)
		queue = append(queue, kids[n]...)
	}
	sort.Strings(out)
	return out
}

// Descendants counts every node's descendants.
func (t Tree) Descendants() map[string]int {
	out := map[string]int{}
	for _, n := range t.Nodes {
		out[n.Node] = len(t.Below(n.Node))
	}
	return out
}

// String draws the tree, one node a line, indented by level.
func (t Tree) String() string {
	children := t.children()
	var b strings.Builder
	var walk func(string, int)
	walk = func(n string, depth int) {
		fmt.Fprintf(&b, "%s%s\n", strings.Repeat("  ", depth), n)
		for _, ch := range children[n] {
			walk(ch, depth+1)
		}
	}
	walk("origin", 0)
	for _, n := range t.Nodes {
		if !n.Attached {
			fmt.Fprintf(&b, "detached: %s (parent %q)\n", n.Node, n.Parent)
		}
	}
	return b.String()
}
