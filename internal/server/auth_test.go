package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/ocm-overlay/ocm/internal/testutil"
	"github.com/ocm-overlay/ocm/internal/tree"
)

// authCall makes one API request with an optional bearer token and
// returns the status and the JSON error message, if any.
func authCall(t *testing.T, ts *testServer, method, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.url(path), nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct{ Error string }
	_ = json.Unmarshal(b, &e)
	if resp.StatusCode == http.StatusUnauthorized {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" || e.Error == "" {
			t.Errorf("%s %s: 401 as %q %s, want a JSON message", method, path, ct, b)
		}
		if !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s %s: 401 without WWW-Authenticate: Bearer", method, path)
		}
	}
	return resp.StatusCode, e.Error
}

var (
	postRoutes = []string{"/api/v1/policy?recovery=drop", "/api/v1/reconnect?node=nobody",
		"/api/v1/kick?node=nobody", "/api/v1/drain?node=nobody"}
	getRoutes = []string{"/api/v1/nodes", "/api/v1/streams", "/api/v1/tree", "/api/v1/policy", "/metrics"}
)

// With a token, every action (POST) needs it; reads stay open.
func TestAPIActionsNeedToken(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.Token = "s3cret" })
	for _, path := range postRoutes {
		if code, msg := authCall(t, ts, http.MethodPost, path, ""); code != http.StatusUnauthorized || !strings.Contains(msg, "needs the server's token") {
			t.Errorf("POST %s without a token: %d %q", path, code, msg)
		}
		if code, msg := authCall(t, ts, http.MethodPost, path, "s3cret-not"); code != http.StatusUnauthorized || !strings.Contains(msg, "wrong token") {
			t.Errorf("POST %s with a wrong token: %d %q", path, code, msg)
		}
	}
	var p struct{ Recovery string }
	ts.getJSON(t, "/api/v1/policy", &p)
	if p.Recovery != string(DefaultRecovery) {
		t.Fatalf("recovery %q: an action ran without the token", p.Recovery)
	}
	for _, path := range postRoutes {
		// Unknown nodes are 404: the action ran and found nothing.
		if code, _ := authCall(t, ts, http.MethodPost, path, "s3cret"); code == http.StatusUnauthorized {
			t.Errorf("POST %s with the token: 401", path)
		}
	}
	ts.getJSON(t, "/api/v1/policy", &p)
	if p.Recovery != string(tree.Drop) {
		t.Errorf("recovery %q after the authorised POST", p.Recovery)
	}
	for _, path := range getRoutes {
		if code, _ := authCall(t, ts, http.MethodGet, path, ""); code != http.StatusOK {
			t.Errorf("GET %s without a token: %d, want open reads", path, code)
		}
	}
}

// --api-read-token closes reads: they need it or the main token, and it
// does not open the actions.
func TestAPIReadToken(t *testing.T) {
	ts := startServer(t, func(s *Server) { s.Token = "s3cret"; s.APIReadToken = "reader" })
	for _, path := range getRoutes {
		for tok, want := range map[string]int{"": 401, "nope": 401, "reader": 200, "s3cret": 200} {
			if code, _ := authCall(t, ts, http.MethodGet, path, tok); code != want {
				t.Errorf("GET %s with token %q: %d, want %d", path, tok, code, want)
			}
		}
	}
	for _, path := range postRoutes {
		if code, _ := authCall(t, ts, http.MethodPost, path, "reader"); code != http.StatusUnauthorized {
			t.Errorf("POST %s with the read token: %d, want 401", path, code)
		}
	}
}

// Without a token, the API is open (on loopback by default).
func TestAPIOpenWithoutToken(t *testing.T) {
	if host, _, err := net.SplitHostPort(DefaultHTTP); err != nil || !net.ParseIP(host).IsLoopback() {
		t.Errorf("DefaultHTTP = %q, want loopback only", DefaultHTTP)
	}
	ts := startServer(t, nil)
	if code, _ := authCall(t, ts, http.MethodPost, "/api/v1/policy?recovery=drop", ""); code != http.StatusOK {
		t.Errorf("POST without a token on a server without one: %d", code)
	}
}

// Binding the API beyond loopback without a token is said on the log
// (stderr in ocm-server); with a token, or on loopback, it is not.
func TestAPIExposedWarning(t *testing.T) {
	for _, tc := range []struct {
		http, token string
		warn        bool
	}{
		{"0.0.0.0:0", "", true},
		{"0.0.0.0:0", "s3cret", false},
		{"127.0.0.1:0", "", false},
	} {
		var log testutil.Buffer
		startServer(t, func(s *Server) {
			s.HTTP, s.Token = tc.http, tc.token
			s.Log = slog.New(slog.NewTextHandler(&log, nil))
		})
		if got := strings.Contains(log.String(), "without a token"); got != tc.warn {
			t.Errorf("--http %s token %q: warned %v, want %v; log:\n%s", tc.http, tc.token, got, tc.warn, log.String())
		}
	}
}
