package api

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// EventIDHeader is the header of GET /api/v1/tree saying the id of the
// last event its snapshot includes: subscribe after it to miss nothing.
const EventIDHeader = "OCM-Event-ID"

// maxEventLine bounds one line of the event stream.
const maxEventLine = 1 << 20

// Event is one server-sent event of GET /api/v1/events: Data is the JSON
// line ocm-server printed (see package event), Name its "event"; "reset"
// means events were lost (the client resumed too late): fetch the trees
// again.
type Event struct {
	ID    int64
	HasID bool
	Name  string
	Data  string
}

// EventStream reads the events of one GET /api/v1/events.
type EventStream struct {
	resp *http.Response
	sc   *bufio.Scanner
}

// Events subscribes to GET /api/v1/events: with since >= 0, from the event
// after that id (what the ring still holds); else from now. A server
// without the endpoint answers an *APIError 404.
func (c *Client) Events(ctx context.Context, since int64) (*EventStream, error) {
	q := url.Values{}
	if since >= 0 {
		q.Set("since", strconv.FormatInt(since, 10))
	}
	// No overall timeout: the stream lasts. The transport's own bounds hold.
	hc := &http.Client{Transport: c.HTTP.Transport, CheckRedirect: c.HTTP.CheckRedirect, Jar: c.HTTP.Jar}
	resp, err := c.send(ctx, hc, http.MethodGet, "/api/v1/events", q, "text/event-stream")
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		defer resp.Body.Close()
		if _, err := c.answer(resp, http.MethodGet, "/api/v1/events"); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("GET /api/v1/events: not an event stream (%s)", resp.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventLine)
	return &EventStream{resp: resp, sc: sc}, nil
}

// Next returns the next event; an error when the stream ends.
func (s *EventStream) Next() (Event, error) {
	var e Event
	for s.sc.Scan() {
		line := s.sc.Text()
		if line == "" {
			if e.Name != "" || e.Data != "" {
				if e.Name == "" {
					e.Name = "message"
				}
				return e, nil
			}
			e = Event{}
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue // a comment: keep-alive
		}
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimPrefix(v, " ")
		switch k {
		case "id":
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return Event{}, fmt.Errorf("event stream: id %q is not a number", v)
			}
			e.ID, e.HasID = n, true
		case "event":
			e.Name = v
		case "data":
			if e.Data != "" {
				e.Data += "\n"
			}
			e.Data += v
		}
	}
	if err := s.sc.Err(); err != nil {
		return Event{}, fmt.Errorf("event stream: %w", err)
	}
	return Event{}, fmt.Errorf("event stream ended")
}

// Close ends the stream.
func (s *EventStream) Close() error { return s.resp.Body.Close() }

// TreesAt is Trees (stream "") or Tree as raw JSON, with the id of the
// last event the snapshot includes; hasID is false for a server that does
// not say (one without the event stream).
func (c *Client) TreesAt(ctx context.Context, stream string) (raw []byte, id int64, hasID bool, err error) {
	var q url.Values
	if stream != "" {
		q = url.Values{"stream": {stream}}
	}
	raw, h, err := c.DoHeader(ctx, http.MethodGet, "/api/v1/tree", q)
	if err != nil {
		return nil, 0, false, err
	}
	if v := h.Get(EventIDHeader); v != "" {
		if n, perr := strconv.ParseInt(v, 10, 64); perr == nil {
			return raw, n, true, nil
		}
	}
	return raw, 0, false, nil
}
