package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// The event stream reader: ids, names, comments skipped, data lines
// joined, the default name, a bad id named; a refusal said; a server
// without the endpoint is a 404 *APIError; the tree's event id is read.
func TestEventStream(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/v1/events":
			if r.URL.Query().Get("since") != "41" || r.Header.Get("Authorization") != "Bearer tok" {
				http.Error(w, "bad request "+r.URL.RawQuery, http.StatusBadRequest)
				return
			}
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte("retry: 1000\n\n: keep-alive\n\nid: 42\nevent: node_failed\ndata: {\"a\":1}\n\n" +
				"data: x\ndata: y\n\nid: nope\n\n"))
		case "/api/v1/tree":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set(EventIDHeader, "42")
			_, _ = w.Write([]byte("[]"))
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":"no such path"}`))
		}
	}))
	defer srv.Close()
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	c.Token = "tok"
	ctx := context.Background()
	raw, id, ok, err := c.TreesAt(ctx, "")
	if err != nil || !ok || id != 42 || string(raw) != "[]" {
		t.Errorf("TreesAt: %s %d %v %v", raw, id, ok, err)
	}
	es, err := c.Events(ctx, 41)
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	for _, want := range []Event{{ID: 42, HasID: true, Name: "node_failed", Data: `{"a":1}`}, {Name: "message", Data: "x\ny"}} {
		if e, err := es.Next(); err != nil || e != want {
			t.Errorf("event %+v %v, want %+v", e, err, want)
		}
	}
	if _, err := es.Next(); err == nil || !strings.Contains(err.Error(), `id "nope"`) {
		t.Errorf("a bad id: %v", err)
	}
	if _, err := c.Events(ctx, 7); err == nil || !strings.Contains(err.Error(), "bad request since=7") {
		t.Errorf("a refused subscription: %v", err)
	}
	old, _ := New(srv.URL + "/old")
	var ae *APIError
	if _, err := old.Events(ctx, -1); !errors.As(err, &ae) || !IsNotFound(err) {
		t.Errorf("a server without the stream: %v", err)
	}
}
