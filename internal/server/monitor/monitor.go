// Package monitor is ocm-server's live monitor page, served at / of the
// HTTP API: plain HTML, CSS and JavaScript embedded in the binary (no
// build step, nothing fetched from the network). The page draws each
// stream's tree from GET /api/v1/tree, follows GET /api/v1/events from
// the snapshot's event id (OCM-Event-ID) and refetches a stream's tree
// when an event changes it; actions POST to the API with the token typed
// into the page (kept in sessionStorage).
package monitor

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Prefix is the path of the page's assets; the page itself is at /.
const Prefix = "/monitor/"

// Handler serves the page at / and its assets under Prefix.
func Handler() http.Handler {
	sub, _ := fs.Sub(static, "static") // a fixed, embedded directory
	files := http.StripPrefix(Prefix, http.FileServer(http.FS(sub)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'; style-src 'self' 'unsafe-inline'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if r.URL.Path == "/" {
			b, _ := static.ReadFile("static/index.html")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			_, _ = w.Write(b)
			return
		}
		files.ServeHTTP(w, r)
	})
}

// Public reports whether r asks for the page or its assets, which hold
// no data and stay open when the API's reads need a token (the page asks
// for it).
func Public(r *http.Request) bool {
	return r.Method == http.MethodGet && (r.URL.Path == "/" || len(r.URL.Path) > len(Prefix) && r.URL.Path[:len(Prefix)] == Prefix)
}
