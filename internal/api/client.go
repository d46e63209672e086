package api

// The client of ocm-server's HTTP API (see package server for the
// endpoints). Every call returns the decoded value and the JSON the server
// sent, so that tools can print the API's own JSON.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// DefaultServer is the HTTP API address ocm-server listens on by default.
const DefaultServer = "127.0.0.1:7080"

// DefaultTimeout bounds one API call.
const DefaultTimeout = 5 * time.Second

// maxBody bounds an API answer.
const maxBody = 64 << 20

// ReconnectOptions are the optional parameters of Reconnect.
type ReconnectOptions struct {
	Stream  string // only this stream (default: every stream of the node)
	Subtree bool   // the node and everything below it
	To      string // the parent to switch to: a node id or "origin"
}

// Client calls one ocm-server's HTTP API.
type Client struct {
	base   *url.URL
	server string // as the user gave it, for messages
	HTTP   *http.Client
	// Token, when set, is sent as "Authorization: Bearer TOKEN": the
	// server wants it for actions, and for reads with --api-read-token.
	Token string
}

// New returns a client of the API at server: HOST:PORT (":PORT" means
// 127.0.0.1) or an http:// or https:// URL.
func New(server string) (*Client, error) {
	s := strings.TrimSpace(server)
	if s == "" {
		return nil, errors.New("empty server address: want HOST:PORT")
	}
	raw := s
	if !strings.Contains(s, "://") {
		host, port, err := net.SplitHostPort(s)
		if err != nil {
			return nil, fmt.Errorf("server %q is not HOST:PORT", server)
		}
		if host == "" {
			host = "127.0.0.1"
		}
		raw = "http://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", server, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("server %q: scheme must be http or https", server)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("server %q has no host", server)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	return &Client{base: u, server: s, HTTP: &http.Client{Timeout: DefaultTimeout}}, nil
}

// Server is the address the client talks to, as given to New.
func (c *Client) Server() string { return c.server }

// UnreachableError means no HTTP answer came from the server.
type UnreachableError struct {
	Server string
	Err    error
}

func (e *UnreachableError) Error() string {
	return fmt.Sprintf("cannot reach ocm-server at %s: %v", e.Server, e.Err)
}

func (e *UnreachableError) Unwrap() error { return e.Err }

// APIError is an answer with an error status.
type APIError struct {
	Method, Path string
	Status       int
	Message      string // the server's {"error":...}, else the body or status text
}

func (e *APIError) Error() string {
	return fmt.Sprintf("%s (%d %s)", e.Message, e.Status, http.StatusText(e.Status))
}

// IsNotFound reports whether err is an API answer 404.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// Do calls the API and returns the JSON answer of a 2xx status; any other
// status is an *APIError, no answer an *UnreachableError.
func (c *Client) Do(ctx context.Context, method, path string, q url.Values) (json.RawMessage, error) {
	raw, _, err := c.DoHeader(ctx, method, path, q)
	return raw, err
}

// DoHeader is Do that also returns the answer's header.
func (c *Client) DoHeader(ctx context.Context, method, path string, q url.Values) (json.RawMessage, http.Header, error) {
	resp, err := c.send(ctx, c.HTTP, method, path, q, "application/json")
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := c.answer(resp, method, path)
	return raw, resp.Header, err
}

// send makes one request with hc.
func (c *Client) send(ctx context.Context, hc *http.Client, method, path string, q url.Values, accept string) (*http.Response, error) {
	u := *c.base
	u.Path += path
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", accept)
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // drop `Get "http://...":`, the server is in the message
		}
		if strings.Contains(err.Error(), "malformed HTTP") {
			// A JSON line where a status line should be: the relays' port.
			err = fmt.Errorf("it does not speak HTTP: is %s ocm-server's OCM port (--listen, relays connect there)? "+
				"ocm-ctl wants its HTTP API address (--http, default %s)", c.server, DefaultServer)
		}
		return nil, &UnreachableError{Server: c.server, Err: err}
	}
	return resp, nil
}

// answer reads a JSON answer: its body for a 2xx status, else an *APIError.
func (c *Client) answer(resp *http.Response, method, path string) (json.RawMessage, error) {
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody+1))
	if err != nil {
		return nil, &UnreachableError{Server: c.server, Err: fmt.Errorf("reading the answer: %w", err)}
	}
	if len(body) > maxBody {
		return nil, fmt.Errorf("%s %s: answer longer than %d bytes", method, path, maxBody)
	}
	ct, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	isJSON := ct == "application/json"
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		ae := &APIError{Method: method, Path: path, Status: resp.StatusCode}
		var e struct {
			Error string `json:"error"`
		}
		switch {
		case isJSON && json.Unmarshal(body, &e) == nil && e.Error != "":
			ae.Message = e.Error
		case !isJSON:
			ae.Message = fmt.Sprintf("%s %s: not ocm-server's API at %s (is --server its HTTP address?)", method, path, c.server)
			if t := firstLine(body); t != "" && ct == "text/plain" {
				ae.Message = fmt.Sprintf("%s %s: %s", method, path, t)
			}
		default:
			ae.Message = fmt.Sprintf("%s %s: %s", method, path, http.StatusText(resp.StatusCode))
		}
		return nil, ae
	}
	if !isJSON || !json.Valid(body) {
		return nil, fmt.Errorf("%s %s: the answer is not JSON: is %s ocm-server's HTTP address?", method, path, c.server)
	}
	return bytes.TrimSpace(body), nil
}

func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// call runs Do and decodes the answer into v.
func (c *Client) call(ctx context.Context, method, path string, q url.Values, v any) (json.RawMessage, error) {
	raw, err := c.Do(ctx, method, path, q)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return raw, fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
	}
	return raw, nil
}

// Trees returns every stream's tree.
func (c *Client) Trees(ctx context.Context) ([]Tree, json.RawMessage, error) {
	var out []Tree
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/tree", nil, &out)
	return out, raw, err
}

// Tree returns one stream's tree; an unknown stream is a 404 *APIError.
func (c *Client) Tree(ctx context.Context, stream string) (Tree, json.RawMessage, error) {
	var out Tree
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/tree", url.Values{"stream": {stream}}, &out)
	return out, raw, err
}

// Nodes returns every registered node.
func (c *Client) Nodes(ctx context.Context) ([]Node, json.RawMessage, error) {
	var out []Node
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/nodes", nil, &out)
	return out, raw, err
}

// Streams returns every stream's summary.
func (c *Client) Streams(ctx context.Context) ([]Stream, json.RawMessage, error) {
	var out []Stream
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/streams", nil, &out)
	return out, raw, err
}

// Policy returns the recovery policy and timings.
func (c *Client) Policy(ctx context.Context) (Policy, json.RawMessage, error) {
	var out Policy
	raw, err := c.call(ctx, http.MethodGet, "/api/v1/policy", nil, &out)
	return out, raw, err
}

// SetPolicy changes the recovery policy and returns the new view.
func (c *Client) SetPolicy(ctx context.Context, recovery string) (Policy, json.RawMessage, error) {
	var out Policy
	raw, err := c.call(ctx, http.MethodPost, "/api/v1/policy", url.Values{"recovery": {recovery}}, &out)
	return out, raw, err
}

// Reconnect sends reconnect (reason operator) to node, per o.
func (c *Client) Reconnect(ctx context.Context, node string, o ReconnectOptions) (Sent, json.RawMessage, error) {
	q := url.Values{"node": {node}}
	if o.Stream != "" {
		q.Set("stream", o.Stream)
	}
	if o.Subtree {
		q.Set("subtree", "1")
	}
	if o.To != "" {
		q.Set("to", o.To)
	}
	return c.action(ctx, "/api/v1/reconnect", q)
}

// Kick closes node's connection, as a failure.
func (c *Client) Kick(ctx context.Context, node string) (Sent, json.RawMessage, error) {
	return c.action(ctx, "/api/v1/kick", url.Values{"node": {node}})
}

// Drain hands node's children over and tells it to leave.
func (c *Client) Drain(ctx context.Context, node string) (Sent, json.RawMessage, error) {
	return c.action(ctx, "/api/v1/drain", url.Values{"node": {node}})
}

func (c *Client) action(ctx context.Context, path string, q url.Values) (Sent, json.RawMessage, error) {
	var out Sent
	raw, err := c.call(ctx, http.MethodPost, path, q, &out)
	return out, raw, err
}
