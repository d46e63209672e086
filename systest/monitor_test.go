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
// The server wants a token for reads and actions: the page says 401 until
// one is typed in, and an action with the read token only is refused,
// plainly.
func TestMonitorPage(t *testing.T) {
	systemTest(t)
	chromium := testutil.RequireTool(t, "chromium")
	o := newOverlay(t, "--origin-capacity", "1", "--token", "s3cret", "--api-read-token", "reader")
	names := []string{"A", "B", "C", "D"}
	for _, n := range names {
		o.join(t, n, "--token", "s3cret")
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
	if err := lab.PageWait(ctx, `document.getElementById('live').textContent.includes('401')`, lab.Patience); err != nil {
		t.Fatalf("no 401 shown without a token: %v", err)
	}
	typeToken(t, ctx, "reader")
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
	// Every drawing from now on: which nodes it shows switching.
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`window.ocmSameDocument = true; window.ocmSwitching = [];
		document.addEventListener('ocm-draw', () => document.querySelectorAll('g.node[data-state="switching"]').forEach(g => window.ocmSwitching.push(g.dataset.node)))`)); err != nil {
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
	switching, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.ocmSwitching`))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range children {
		if !slices.Contains(switching, c) {
			t.Errorf("%s was never drawn switching while it moved (switching drawn: %v)", c, switching)
		}
	}
	after := pageNodes(t, ctx)
	for _, c := range children {
		t.Logf("%s: parent %s -> %s", c, before[c].Parent, after[c].Parent)
	}

	// An action: refused with the read token, done with the server's.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(`g.node[data-node="`+children[0]+`"]`)),
		chromedp.Click(chromedp.ID("reconnect"))); err != nil {
		t.Fatal(err)
	}
	if err := lab.PageWait(ctx, `(r => r.className === 'error' && r.textContent.includes('401') && r.textContent.includes('wrong token'))(document.getElementById('result'))`, lab.Patience); err != nil {
		t.Errorf("no 401 shown for an action with the read token: %v", err)
	}
	typeToken(t, ctx, "s3cret")
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("reconnect"))); err != nil {
		t.Fatal(err)
	}
	if err := lab.PageWait(ctx, `(r => r.className === 'ok' && r.textContent.includes('reconnect'))(document.getElementById('result'))`, lab.Patience); err != nil {
		t.Errorf("the reconnect with the token was not done: %v", err)
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

// typeToken types tok into the page's token field, as a user does.
func typeToken(t *testing.T, ctx context.Context, tok string) {
	t.Helper()
	_, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(document.getElementById('token').value = '', true)`))
	if err == nil {
		err = chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("token"), tok+"\r"))
	}
	if err != nil {
		t.Fatalf("typing the token: %v", err)
	}
}

// jsList is ids as a JavaScript array literal (ids are plain names).
func jsList(ids []string) string {
	return "['" + strings.Join(ids, "','") + "']"
}
