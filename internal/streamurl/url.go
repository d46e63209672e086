// Package streamurl owns the stream's identity: the origin URL
// rtsp://MSHOST:MSPORT/MEDIA that keys a stream in trees, reports and
// metrics, and the enhanced URL rtsp://HOST:PORT/MEDIA?MSHOST:MSPORT a player
// opens on a mediator. It parses, normalises and prints both, and imports
// only the standard library so every tool can share it.
package streamurl

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
)

// DefaultPort is the origin's RTSP port when the enhanced query names only
// a host.
const DefaultPort = 554

// ErrBadQuery is wrapped by every error about a malformed enhanced query.
var ErrBadQuery = errors.New("malformed enhanced query")

// Origin identifies a stream everywhere in the overlay: the origin server and
// the media path on it.
type Origin struct {
	Host  string // host name or IP, without brackets
	Port  int
	Media string // path on the origin, without the leading slash
}

// URL is the normalised origin URL, the stream's key in trees, reports and
// metrics: rtsp://MSHOST:MSPORT/MEDIA.
func (o Origin) URL() string {
	return "rtsp://" + o.Addr() + "/" + o.Media
}

// Addr is the origin's HOST:PORT.
func (o Origin) Addr() string {
	return net.JoinHostPort(o.Host, strconv.Itoa(o.Port))
}

// Query is the enhanced query naming this origin, MSHOST:MSPORT.
func (o Origin) Query() string {
	return o.Addr()
}

// EnhancedURL is the URL a player or a downstream relay opens on the
// mediator at hostport to get this stream: rtsp://HOSTPORT/MEDIA?MSHOST:MSPORT.
func (o Origin) EnhancedURL(hostport string) string {
	return "rtsp://" + hostport + "/" + o.Media + "?" + o.Query()
}

// ParseEnhanced reads the path and query of an enhanced request
// (rtsp://HOST:PORT/MEDIA?MSHOST[:MSPORT]) into an Origin. path may start
// with a slash. A query that is not exactly one host with an optional port
// is an error wrapping ErrBadQuery that says what was wrong.
func ParseEnhanced(path, query string) (Origin, error) {
	media := strings.Trim(path, "/")
	if media == "" {
		return Origin{}, fmt.Errorf("%w: no media path before '?%s'", ErrBadQuery, query)
	}
	// The media path is written into URLs (the stream's key, the
	// upstream's and the enhanced URL) and read back from them: refuse
	// what would not read back the same, an escape or a control byte.
	if strings.ContainsAny(media, "?#%") || strings.Contains(media, "..") ||
		strings.ContainsFunc(media, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return Origin{}, fmt.Errorf("%w: media path %q has characters that are not allowed", ErrBadQuery, media)
	}
	q, err := url.QueryUnescape(query)
	if err != nil {
		return Origin{}, fmt.Errorf("%w: %q: %v", ErrBadQuery, query, err)
	}
	if q == "" {
		return Origin{}, fmt.Errorf("%w: empty query, want MSHOST[:MSPORT]", ErrBadQuery)
	}
	if strings.ContainsAny(q, "/@&=?# \t") {
		return Origin{}, fmt.Errorf("%w: %q is not MSHOST[:MSPORT]", ErrBadQuery, q)
	}

	host, portStr := q, ""
	switch {
	case strings.HasPrefix(q, "["):
		end := strings.Index(q, "]")
		if end < 0 {
			return Origin{}, fmt.Errorf("%w: %q: missing ']' in IPv6 address", ErrBadQuery, q)
		}
		host = q[1:end]
		rest := q[end+1:]
		if rest != "" {
			if !strings.HasPrefix(rest, ":") {
				return Origin{}, fmt.Errorf("%w: %q: unexpected %q after IPv6 address", ErrBadQuery, q, rest)
			}
			portStr = rest[1:]
			if portStr == "" {
				return Origin{}, fmt.Errorf("%w: %q: empty port", ErrBadQuery, q)
			}
		}
		if net.ParseIP(host) == nil {
			return Origin{}, fmt.Errorf("%w: %q is not an IPv6 address", ErrBadQuery, host)
		}
	case strings.Count(q, ":") > 1:
		return Origin{}, fmt.Errorf("%w: %q: write IPv6 origins in brackets, [ADDR]:PORT", ErrBadQuery, q)
	case strings.Contains(q, ":"):
		i := strings.LastIndex(q, ":")
		host, portStr = q[:i], q[i+1:]
		if portStr == "" {
			return Origin{}, fmt.Errorf("%w: %q: empty port", ErrBadQuery, q)
		}
	}
	if host == "" {
		return Origin{}, fmt.Errorf("%w: %q: empty host", ErrBadQuery, q)
	}
	if !ValidHost(host) {
		return Origin{}, fmt.Errorf("%w: %q is not a valid host name or address", ErrBadQuery, host)
	}

	port := DefaultPort
	if portStr != "" {
		p, err := strconv.Atoi(portStr)
		if err != nil || p < 1 || p > 65535 {
			return Origin{}, fmt.Errorf("%w: port %q is not a number from 1 to 65535", ErrBadQuery, portStr)
		}
		port = p
	}
	return Origin{Host: strings.ToLower(host), Port: port, Media: media}, nil
}

// Parse reads an origin URL, rtsp://MSHOST[:MSPORT]/MEDIA, as tools and
// users write it, or an enhanced URL, whose query names the origin.
func Parse(s string) (Origin, error) {
	u, err := url.Parse(s)
	if err != nil {
		return Origin{}, fmt.Errorf("origin URL %q: %w", s, err)
	}
	if u.Scheme != "rtsp" {
		return Origin{}, fmt.Errorf("origin URL %q: scheme must be rtsp", s)
	}
	if u.RawQuery != "" {
		// An enhanced URL names its origin in the query.
		return ParseEnhanced(u.Path, u.RawQuery)
	}
	return ParseEnhanced(u.Path, u.Host)
}

// ValidHost reports whether h is an IP address or a DNS host name (labels
// of letters, digits, inner hyphens and underscores).
func ValidHost(h string) bool {
	if net.ParseIP(h) != nil {
		return true
	}
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for i, c := range label {
			ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
				c == '-' && i > 0 && i < len(label)-1 || c == '_'
			if !ok {
				return false
			}
		}
	}
	return true
}

// KeyAddr returns the origin's RTSP address, HOST:PORT, from a stream key
// as the tree server receives it (rtsp:// or rtsps://, a missing port being
// the scheme's default: 554 or 322). Unlike Parse it reads the key's own
// host even when the key carries a query, and does not normalise: the
// server compares keys as given.
func KeyAddr(key string) (string, error) {
	u, err := url.Parse(key)
	if err != nil {
		return "", fmt.Errorf("stream key %q: %w", key, err)
	}
	port := ""
	switch u.Scheme {
	case "rtsp":
		port = strconv.Itoa(DefaultPort)
	case "rtsps":
		port = "322"
	default:
		return "", fmt.Errorf("stream key %q is not an rtsp:// origin URL", key)
	}
	host := u.Hostname()
	if host == "" {
		return "", fmt.Errorf("stream key %q has no origin host", key)
	}
	if p := u.Port(); p != "" {
		port = p
	}
	return net.JoinHostPort(host, port), nil
}
