package testutil

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"testing"

	"github.com/ocm-overlay/ocm/internal/api"
)

// GetJSON GETs url and, when it answers 200 and v is not nil, decodes the
// body into v; it returns the status.
func GetJSON(t testing.TB, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil && resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// TreeShape renders a tree as "node<parent@level" sorted by node, orphans
// with parent "-".
func TreeShape(snap api.Tree) string {
	var parts []string
	for _, m := range snap.Nodes {
		p := m.Parent
		if p == "" {
			p = "-"
		}
		parts = append(parts, fmt.Sprintf("%s<%s@%d", m.Node, p, m.Level))
	}
	sort.Strings(parts)
	return strings.Join(parts, " ")
}
