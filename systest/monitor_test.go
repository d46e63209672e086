package systest

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ocm-overlay/ocm/internal/lab"
	"github.com/ocm-overlay/ocm/internal/testutil"
)

// drawnNode is one node as the monitor page draws it.
type drawnNode struct {
	ID     string `json:"id"`
	Parent string `json:"parent"`
	State  string `json:"state"`
}

// pageNodes reads the drawn nodes of the monitor page, by id.
func pageNodes(t *testing.T, ctx context.Context) map[string]drawnNode {
	t.Helper()
	list, err := chromedp.Run(ctx, chromedp.Evaluate[[]drawnNode](
		`[...document.querySelectorAll('g.node[data-node]')].map(g => ({id: g.dataset.node, parent: g.dataset.parent || '', state: g.dataset.state || ''}))`))
	if err != nil {
		t.Fatalf("reading the page: %v", err)
	}
	out := map[string]drawnNode{}
	for _, n := range list {
		out[n.ID] = n
	}
	return out
}

// TestMonitorPage loads the monitor page of a running overlay in headless
// chromium, SIGKILLs a relay with children, and sees the page mark it
// failed and draw its children under their new parents, live: no reload.
func TestMonitorPage(t *testing.T) {
	systemTest(t)
	chromium := testutil.RequireTool(t, "chromium")
	o := newOverlay(t, "--origin-capacity", "1")
	names := []string{"A", "B", "C", "D"}
	for _, n := range names {
		o.join(t, n)
	}
	ctx, stop, err := lab.Browser(context.Background(), chromium)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, 2*lab.Patience)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate("http://"+o.srv.HTTP+"/")); err != nil {
		t.Fatal(err)
	}
	all := `['A','B','C','D'].every(id => document.querySelector('g.node[data-node="' + id + '"]'))`
	if err := lab.PageWait(ctx, all+` && document.getElementById('live').textContent === 'live'`, lab.Patience); err != nil {
		t.Fatalf("one drawn node per relay: %v", err)
	}
	before := pageNodes(t, ctx)
	// The relay with children (with one slot at the origin, the first).
	victim, children := "", []string{}
	for _, n := range names {
		var kids []string
		for _, m := range before {
			if m.Parent == n {
				kids = append(kids, m.ID)
			}
		}
		if len(kids) > 0 && victim == "" {
			victim, children = n, kids
		}
	}
	if victim == "" {
		t.Fatalf("no relay has children on the page: %+v", before)
	}
	slices.Sort(children)
	t.Logf("page before: %+v; killing %s, parent of %v", before, victim, children)
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.ocmSameDocument = true`)); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	o.byName[victim].Relay.Kill() // its mediator stays: the relay fails while in the stream

	// Failed, and every child drawn under a parent that is not the victim.
	moved := `(() => { const g = id => document.querySelector('g.node[data-node="' + id + '"]');
		const v = g('` + victim + `'); if (!v || v.dataset.state !== 'failed') return false;
		return ` + jsList(children) + `.every(c => { const n = g(c); return n && n.dataset.parent && n.dataset.parent !== '` + victim + `' && n.dataset.state !== 'failed'; }); })()`
	if err := lab.PageWait(ctx, moved, lab.Patience); err != nil {
		t.Fatalf("the page did not show %s failed and %v moved: %v; page: %+v", victim, children, err, pageNodes(t, ctx))
	}
	t.Logf("page showed %s failed and its children moved %v after the kill", victim, time.Since(killed).Round(time.Millisecond))
	same, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`window.ocmSameDocument === true`))
	if err != nil || !same {
		t.Errorf("the page was reloaded (%v)", err)
	}
	after := pageNodes(t, ctx)
	for _, c := range children {
		t.Logf("%s: parent %s -> %s", c, before[c].Parent, after[c].Parent)
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := lab.LogDir
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, "monitor-after-kill.png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}

// jsList is ids as a JavaScript array literal (ids are plain names).
func jsList(ids []string) string {
	return "['" + strings.Join(ids, "','") + "']"
}
