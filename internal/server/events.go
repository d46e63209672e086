package server

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/wire"
)

// The live event stream: GET /api/v1/events, server-sent events. Every
// event the server emits (the JSON lines of Server.Events) is also
// published to a hub, which numbers it (consecutive ids from the start
// time, see idBase) and keeps the last EventRing of them, so a client that
// reconnects with Last-Event-ID (or ?since=N) gets what it missed. A
// client further behind than the ring, or resuming across a server
// restart, is told "reset" and should fetch the trees again. Publishing
// never blocks: each client has a buffer of EventClientBuffer frames, and
// a client that lets it fill is dropped (its response ends; it may resume
// from the ring).

const (
	// DefaultEventRing is how many events the server keeps for clients
	// that resume.
	DefaultEventRing = 8192
	// DefaultEventClientBuffer is how many events may wait for one event
	// stream client before it is dropped.
	DefaultEventClientBuffer = 1024
	// EventKeepAlive is how often an idle event stream gets a comment.
	EventKeepAlive = 15 * time.Second
)

// hub numbers the events, keeps the ring and feeds the clients.
type hub struct {
	mu     sync.Mutex
	base   int64    // the id before the first event
	last   int64    // id of the newest event, base before any
	ring   [][]byte // frames; ring[id%len(ring)] is event id's
	kept   int      // events in the ring
	subs   map[*subscriber]struct{}
	buffer int
	closed bool
}

// subscriber is one event stream client.
type subscriber struct {
	ch   chan []byte
	gone chan struct{} // closed when it is dropped or the hub closes
}

// newHub numbers the events from base+1.
func newHub(ring, buffer int, base int64) *hub {
	return &hub{ring: make([][]byte, ring), subs: map[*subscriber]struct{}{}, buffer: buffer, base: base, last: base}
}

// idBase is where a server started now numbers its events: its start
// time in microseconds, so a later run's ids are all higher (unless a run
// emitted more than one event per microsecond on average) and a client
// resuming across a restart with an id of the earlier run is told to
// reset rather than handed the new run's events as if they followed.
func idBase(now time.Time) int64 { return now.UnixMicro() }

// publish numbers one event line and hands its frame to every client that
// has room; the others are dropped. It never blocks.
func (h *hub) publish(name string, line []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.last++
	data := bytes.TrimRight(line, "\n") // one JSON line: no newline inside
	frame := make([]byte, 0, len(data)+len(name)+40)
	frame = fmt.Appendf(frame, "id: %d\nevent: %s\ndata: ", h.last, name)
	frame = append(frame, data...)
	frame = append(frame, '\n', '\n')
	h.ring[h.last%int64(len(h.ring))] = frame
	h.kept = min(h.kept+1, len(h.ring))
	for sub := range h.subs {
		select {
		case sub.ch <- frame:
		default:
			delete(h.subs, sub)
			close(sub.gone)
		}
	}
}

// lastID is the id of the newest event published.
func (h *hub) lastID() int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// subscribe adds a client. With resume, it wants the events after since:
// those still in the ring come back as backlog; when some are gone
// already (or since is from another run), reset is true and the client
// gets only what comes next. oldest is the oldest id kept.
func (h *hub) subscribe(since int64, resume bool) (sub *subscriber, backlog [][]byte, reset bool, oldest, last int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	sub = &subscriber{ch: make(chan []byte, h.buffer), gone: make(chan struct{})}
	oldest = h.last - int64(h.kept) + 1
	if h.closed {
		close(sub.gone)
		return sub, nil, false, oldest, h.last
	}
	h.subs[sub] = struct{}{}
	if !resume {
		return sub, nil, false, oldest, h.last
	}
	if since > h.last || since+1 < oldest {
		return sub, nil, true, oldest, h.last
	}
	for id := since + 1; id <= h.last; id++ {
		backlog = append(backlog, h.ring[id%int64(len(h.ring))])
	}
	return sub, backlog, false, oldest, h.last
}

func (h *hub) unsubscribe(sub *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[sub]; ok {
		delete(h.subs, sub)
		close(sub.gone)
	}
}

// clients is how many event stream clients are subscribed.
func (h *hub) clients() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs)
}

// close ends every client's stream.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for sub := range h.subs {
		delete(h.subs, sub)
		close(sub.gone)
	}
}

// resumeFrom reads where a client resumes: the Last-Event-ID header (an
// EventSource reconnecting) or else ?since=N.
func resumeFrom(r *http.Request) (since int64, resume bool, err error) {
	v, what := r.Header.Get("Last-Event-ID"), "Last-Event-ID"
	if v == "" {
		v, what = r.URL.Query().Get("since"), "since"
	}
	if v = strings.TrimSpace(v); v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, false, badRequest("%s %q is not an event id (a number >= 0)", what, v)
	}
	return n, true, nil
}

// serveEvents is GET /api/v1/events.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request) {
	since, resume, err := resumeFrom(r)
	if err != nil {
		writeJSONError(w, http.StatusBadRequest, err.Error())
		return
	}
	rc := http.NewResponseController(w)
	sub, backlog, reset, oldest, last := s.hub.subscribe(since, resume)
	defer s.hub.unsubscribe(sub)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no")
	// Each batch of writes gets its own deadline, so a client that stops
	// reading is cut after HTTPWriteTimeout instead of holding the
	// handler; between batches the stream may stay open forever.
	send := func(frames ...[]byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(s.HTTPWriteTimeout))
		for _, f := range frames {
			if _, err := w.Write(f); err != nil {
				return false
			}
		}
		if rc.Flush() != nil {
			return false
		}
		_ = rc.SetWriteDeadline(time.Time{})
		return true
	}
	w.WriteHeader(http.StatusOK)
	first := [][]byte{[]byte("retry: 1000\n\n")}
	if reset {
		first = append(first, fmt.Appendf(nil, "id: %d\nevent: reset\ndata: {\"event\":\"reset\",\"oldest\":%d,\"last\":%d}\n\n", last, oldest, last))
	}
	if !send(append(first, backlog...)...) {
		return
	}
	keepAlive := time.NewTicker(EventKeepAlive)
	defer keepAlive.Stop()
	var batch [][]byte
	for {
		select {
		case f := <-sub.ch:
			batch = append(batch[:0], f)
		more:
			for len(batch) < 64 {
				select {
				case f := <-sub.ch:
					batch = append(batch, f)
				default:
					break more
				}
			}
			if !send(batch...) {
				return
			}
		case <-sub.gone:
			// Dropped (too slow) or the server is closing: what is
			// still buffered goes out first, in order, so the client
			// resumes from the ring after its last id without a gap.
			for {
				select {
				case f := <-sub.ch:
					if !send(f) {
						return
					}
				default:
					return
				}
			}
		case <-keepAlive.C:
			if !send([]byte(": keep-alive\n\n")) {
				return
			}
		case <-r.Context().Done():
			return
		}
	}
}

// treeWithEventID answers GET /api/v1/tree with the header api.EventIDHeader:
// the id of the last event its snapshot includes, read in the state
// goroutine with the snapshot (every tree event is emitted there).
func (s *Server) treeWithEventID(w http.ResponseWriter, r *http.Request, st *state) (any, error) {
	w.Header().Set(api.EventIDHeader, strconv.FormatInt(s.hub.lastID(), 10))
	stream := r.URL.Query().Get("stream")
	if stream == "" {
		return st.forest.Trees(), nil
	}
	t, ok := st.forest.Tree(stream)
	if !ok {
		return nil, notFound("no tree for stream %q", stream)
	}
	return t, nil
}

// summary adds up the relays' reports between two report_summary events
// (state goroutine only).
type summary struct {
	reports, lossy int
	at             time.Time
	prev           event.ReportSummary
}

// noteReport counts one report for the next summary.
func (st *state) noteReport(r *wire.Report) {
	st.s.sum.reports++
	for _, s := range r.Streams {
		if s.Loss > 0 {
			st.s.sum.lossy++
			break
		}
	}
}

// summarize emits report_summary when a report interval has passed since
// the last one and something changed: at most one per interval, none
// while the overlay is idle.
func (st *state) summarize(now time.Time) {
	sum := &st.s.sum
	if now.Sub(sum.at) < st.s.ReportInterval {
		return
	}
	e := event.ReportSummary{Reports: sum.reports, Lossy: sum.lossy, Nodes: st.forest.NumNodes()}
	for _, t := range st.forest.Streams() {
		e.Streams++
		e.Attached += t.Attached
		e.Orphans += t.Orphans
		e.Depth = max(e.Depth, t.Depth)
	}
	if e == sum.prev {
		return
	}
	st.s.Events.Emit(e)
	sum.reports, sum.lossy, sum.at, sum.prev = 0, 0, now, e
	sum.prev.Reports, sum.prev.Lossy = 0, 0 // so an interval with reports always differs
}
