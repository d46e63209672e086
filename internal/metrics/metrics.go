// Package metrics is what every tool's Prometheus endpoint shares: a
// registry of its own with the Go and process collectors and
// ocm_build_info, the /metrics handler, the listener behind --metrics, and
// the cap on per-stream label values.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultMaxStreams is how many streams get series of their own; the
// others are summed under stream="other" (Other), so a peer that names
// many streams cannot grow a scrape without bound.
const DefaultMaxStreams = 100

// Other is the stream label the streams beyond the cap are summed under.
const Other = "other"

// NewRegistry returns a registry (never the global default) holding the Go
// and process collectors and ocm_build_info.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	version, revision := buildInfo()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "ocm_build_info",
			Help:        "Always 1: the module version, VCS revision and Go version of this build.",
			ConstLabels: prometheus.Labels{"version": version, "revision": revision, "goversion": runtime.Version()},
		}, func() float64 { return 1 }),
	)
	return reg
}

// buildInfo returns the module version ("(devel)" from a checkout) and the
// VCS revision ("+dirty" when the tree had changes), as --version prints.
func buildInfo() (version, revision string) {
	version, revision = "unknown", "unknown"
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if version = bi.Main.Version; version == "" {
		version = "(devel)"
	}
	dirty := ""
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	return version, revision + dirty
}

// Handler serves reg in the Prometheus text format (or OpenMetrics, when
// the scraper asks for it).
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// Server is the --metrics listener of a tool: GET /metrics and nothing
// else, with timeouts so an idle or slow scraper holds nothing for long.
type Server struct {
	Addr string // HOST:PORT; port 0 picks one
	Reg  *prometheus.Registry

	ln  net.Listener
	srv *http.Server
	end chan error
}

// FlagHelp is the --metrics flag's help, the same for every tool.
const FlagHelp = "serve Prometheus metrics at http://ADDR/metrics, HOST:PORT (port 0 picks one, said in the ready line as \"metrics\"; default: off)"

// Serve starts a --metrics listener on addr with a registry of its own
// holding cs; nil (and no error) when addr is empty.
func Serve(addr string, cs ...prometheus.Collector) (*Server, error) {
	if addr == "" {
		return nil, nil
	}
	reg := NewRegistry()
	reg.MustRegister(cs...)
	s := &Server{Addr: addr, Reg: reg}
	if err := s.Start(); err != nil {
		return nil, err
	}
	return s, nil
}

// BoundAddr returns the bound address, "" for a nil Server (metrics off).
func (s *Server) BoundAddr() string {
	if s == nil {
		return ""
	}
	return s.Addr
}

// Start listens; Addr then holds the bound address.
func (s *Server) Start() error {
	ln, err := net.Listen("tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("metrics listen %s: %w", s.Addr, err)
	}
	s.ln, s.Addr = ln, ln.Addr().String()
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", Handler(s.Reg))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 10 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
	s.end = make(chan error, 1)
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.end <- err
	}()
	return nil
}

// Close stops the listener and waits for it; idempotent.
func (s *Server) Close() error {
	if s == nil || s.srv == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := s.srv.Shutdown(ctx); err != nil {
		_ = s.srv.Close()
	}
	s.srv = nil
	return <-s.end
}

// Capped returns how many of n streams, ordered by whoever calls, keep a
// stream label of their own under a cap of max series (max <= 0: the
// default): all of them when they fit, else max-1, the rest going under
// stream="other".
func Capped(n, max int) int {
	if max <= 0 {
		max = DefaultMaxStreams
	}
	if n <= max {
		return n
	}
	return max - 1
}
