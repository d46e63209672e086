package server

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/metrics"
	"github.com/ocm-overlay/ocm/internal/server/monitor"
	"github.com/ocm-overlay/ocm/internal/streamurl"

	"github.com/ocm-overlay/ocm/internal/tree"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// httpError is an API error with its status.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func notFound(format string, a ...any) error {
	return &httpError{http.StatusNotFound, fmt.Sprintf(format, a...)}
}

func badRequest(format string, a ...any) error {
	return &httpError{http.StatusBadRequest, fmt.Sprintf(format, a...)}
}

func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/nodes", s.api(func(r *http.Request, st *state) (any, error) {
		out := make([]api.Node, 0, len(st.sessions))
		for _, n := range st.forest.Nodes() {
			if ss := st.sessions[n.ID]; ss != nil {
				n.Remote, n.Connected, n.LastSeen = ss.remote, ss.since, time.Unix(0, ss.lastSeen.Load())
			}
			out = append(out, n)
		}
		return out, nil
	}))
	mux.HandleFunc("GET /api/v1/streams", s.api(func(r *http.Request, st *state) (any, error) {
		sums := st.forest.Streams()
		for i := range sums {
			sums[i].Origin, _ = streamurl.KeyAddr(sums[i].Stream)
		}
		return sums, nil
	}))
	mux.HandleFunc("GET /api/v1/tree", s.apiW(s.treeWithEventID))
	mux.HandleFunc("GET /api/v1/events", s.serveEvents)
	mux.Handle("GET /{$}", monitor.Handler())
	mux.Handle("GET "+monitor.Prefix, monitor.Handler())
	mux.HandleFunc("GET /api/v1/policy", s.api(func(r *http.Request, st *state) (any, error) {
		return st.policyView(), nil
	}))
	mux.HandleFunc("POST /api/v1/policy", s.api(func(r *http.Request, st *state) (any, error) {
		p, err := tree.ParsePolicy(r.URL.Query().Get("recovery"))
		if err != nil {
			return nil, badRequest("%v", err)
		}
		if p != st.policy {
			st.s.Events.Emit(event.PolicyChanged{From: string(st.policy), To: string(p)})
			st.s.Log.Info("recovery policy changed", "from", st.policy, "to", p)
			st.policy = p
		}
		return st.policyView(), nil
	}))
	mux.HandleFunc("POST /api/v1/reconnect", s.api(func(r *http.Request, st *state) (any, error) {
		return st.operatorReconnect(r)
	}))
	mux.HandleFunc("POST /api/v1/kick", s.api(func(r *http.Request, st *state) (any, error) {
		ss, err := st.sessionFor(r)
		if err != nil {
			return nil, err
		}
		st.fail(ss, ending{cause: causeKicked}, &wire.Error{Code: wire.CodeKicked, Message: "removed by an operator"})
		return api.Sent{Sent: []api.Target{{Node: ss.node, Type: wire.TypeError}}}, nil
	}))
	mux.HandleFunc("POST /api/v1/drain", s.api(func(r *http.Request, st *state) (any, error) {
		ss, err := st.sessionFor(r)
		if err != nil {
			return nil, err
		}
		return st.drain(ss), nil
	}))
	mux.Handle("GET /metrics", metrics.Handler(s.reg))
	return mux
}

// limited bounds every request: its response must be written within
// HTTPWriteTimeout (a streaming handler lifts that with
// http.NewResponseController(w).SetWriteDeadline(time.Time{})), its body
// is at most HTTPMaxBody bytes, and a POST's body, which the actions do
// not use, is read before the action runs, so an action never runs on a
// request that did not fully arrive within HTTPReadTimeout.
func (s *Server) limited(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.HTTPWriteTimeout))
		tooLarge := func() {
			w.Header().Set("Connection", "close")
			writeJSONError(w, http.StatusRequestEntityTooLarge,
				fmt.Sprintf("request body over %d bytes (parameters go in the query)", s.HTTPMaxBody))
		}
		if r.ContentLength > s.HTTPMaxBody {
			tooLarge()
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, s.HTTPMaxBody)
		if r.Method == http.MethodPost {
			if _, err := io.Copy(io.Discard, r.Body); err != nil {
				var mb *http.MaxBytesError
				if errors.As(err, &mb) {
					tooLarge()
					return
				}
				// Too slow (the read deadline) or gone: nobody to answer.
				w.Header().Set("Connection", "close")
				writeJSONError(w, http.StatusRequestTimeout, "request body not received in time")
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

// authorized lets a request through when it carries the token its method
// needs: a POST (an action) needs Token when one is set; a read needs
// APIReadToken or Token when APIReadToken is set. Tokens are compared in
// constant time. Otherwise the answer is 401 with a JSON message.
func (s *Server) authorized(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var want []string
		switch {
		case monitor.Public(r): // the page holds no data; it asks for the token
			h.ServeHTTP(w, r)
			return
		case r.Method == http.MethodPost && s.Token != "":
			want = []string{s.Token}
		case r.Method != http.MethodPost && s.APIReadToken != "":
			want = []string{s.APIReadToken, s.Token}
		default:
			h.ServeHTTP(w, r)
			return
		}
		got, ok := bearer(r)
		for _, tok := range want {
			if ok && tok != "" && subtle.ConstantTimeCompare([]byte(got), []byte(tok)) == 1 {
				h.ServeHTTP(w, r)
				return
			}
		}
		what := "changing the overlay"
		if r.Method != http.MethodPost {
			what = "reading the API"
		}
		msg := what + " needs the server's token: send Authorization: Bearer TOKEN (ocm-ctl --token or $OCM_TOKEN)"
		if ok {
			msg = "wrong token for " + what
		}
		w.Header().Set("WWW-Authenticate", `Bearer realm="ocm-server"`)
		writeJSONError(w, http.StatusUnauthorized, msg)
	})
}

// bearer returns the request's bearer token.
func bearer(r *http.Request) (string, bool) {
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// writeJSONError writes {"error": msg} with status.
func writeJSONError(w http.ResponseWriter, status int, msg string) {
	b, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// api adapts a handler that runs in the state goroutine and returns a
// value to encode. The value must not share memory with the state: the
// encoding happens after the state goroutine moved on.
func (s *Server) api(fn func(*http.Request, *state) (any, error)) http.HandlerFunc {
	return s.apiW(func(_ http.ResponseWriter, r *http.Request, st *state) (any, error) { return fn(r, st) })
}

// apiW is api for a handler that also sets headers (w is only for that).
func (s *Server) apiW(fn func(http.ResponseWriter, *http.Request, *state) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var v any
		var err error
		if cerr := s.call(r.Context(), func(st *state) { v, err = fn(w, r, st) }); cerr != nil {
			err = &httpError{http.StatusServiceUnavailable, cerr.Error()}
		}
		status := http.StatusOK
		if err != nil {
			status = http.StatusInternalServerError
			var he *httpError
			if errors.As(err, &he) {
				status = he.status
			}
			v = map[string]string{"error": err.Error()}
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(v); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(buf.Bytes())
	}
}

func (st *state) policyView() api.Policy {
	s := st.s
	return api.Policy{
		Recovery: string(st.policy), HeartbeatMs: s.Heartbeat.Milliseconds(), ReportMs: s.ReportInterval.Milliseconds(),
		MaxCandidates: s.MaxCandidates, OriginCapacity: s.OriginCapacity, Displace: s.displaceSetting(),
		ReconnectStepMs: s.ReconnectStep.Milliseconds(), HandoverMs: s.HandoverTimeout.Milliseconds(),
		OrphanGraceMs: s.OrphanGrace.Milliseconds(),
	}
}

func (st *state) sessionFor(r *http.Request) (*session, error) {
	id := r.URL.Query().Get("node")
	if id == "" {
		return nil, badRequest("node= is required")
	}
	ss := st.sessions[id]
	if ss == nil {
		return nil, notFound("no node %q", id)
	}
	return ss, nil
}

// operatorReconnect sends reconnect (reason operator) to a node for one
// or all of its streams, and with subtree=1 to everything below it too;
// to=PARENT (a node id or "origin") is passed to the node itself as the
// parent to switch to: it must receive the stream, not be leaving, and
// not be the node or below it (400 otherwise). No slot is reserved: if
// the node's joined is refused, it resolves by itself.
func (st *state) operatorReconnect(r *http.Request) (any, error) {
	q := r.URL.Query()
	ss, err := st.sessionFor(r)
	if err != nil {
		return nil, err
	}
	subtree := q.Get("subtree") == "1" || q.Get("subtree") == "true"
	streams := st.forest.StreamsOf(ss.node)
	if s := q.Get("stream"); s != "" {
		if _, ok := st.forest.Level(s, ss.node); !ok {
			return nil, notFound("node %q is not in stream %q", ss.node, s)
		}
		streams = []string{s}
	}
	to := q.Get("to")
	if to != "" && to != wire.OriginID && !st.forest.HasNode(to) {
		return nil, notFound("no node %q to switch to", to)
	}
	out := api.Sent{Sent: []api.Target{}}
	for _, s := range streams {
		if to != "" && to != wire.OriginID {
			switch {
			case slices.Contains(flatten(st.forest.Subtree(s, ss.node)), to):
				return nil, badRequest("%q is %q or below it in %q: switching there would be a cycle", to, ss.node, s)
			case !st.forest.Attached(s, to):
				return nil, badRequest("%q does not receive %q (or is detached)", to, s)
			case st.forest.Leaving(s, to):
				return nil, badRequest("%q is leaving %q", to, s)
			}
		}
	}
	for _, s := range streams {
		targets := []string{ss.node}
		if subtree {
			targets = flatten(st.forest.Subtree(s, ss.node))
		}
		for _, id := range targets {
			t := st.sessions[id]
			if t == nil {
				continue
			}
			rc := &wire.Reconnect{Stream: s, Reason: wire.ReasonOperator}
			if id == ss.node && to != "" {
				rc.Target = to
				if to == wire.OriginID {
					rc.TargetRTSP, _ = streamurl.KeyAddr(s)
				} else if n, ok := st.forest.Node(to); ok {
					rc.TargetRTSP = n.RTSP
				}
			}
			st.sendReconnect(t, rc)
			out.Sent = append(out.Sent, api.Target{Node: id, Stream: s, Type: wire.TypeReconnect, Target: rc.Target})
		}
	}
	return out, nil
}

// flatten lists the nodes of a Subtree, level by level.
func flatten(levels [][]string) []string {
	out := []string{}
	for _, l := range levels {
		out = append(out, l...)
	}
	return out
}
