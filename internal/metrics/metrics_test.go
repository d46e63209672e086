package metrics

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestCapped(t *testing.T) {
	for _, c := range []struct{ n, max, want int }{
		{0, 100, 0}, {100, 100, 100}, {101, 100, 99}, {5, 0, 5}, {DefaultMaxStreams + 1, 0, DefaultMaxStreams - 1},
	} {
		if got := Capped(c.n, c.max); got != c.want {
			t.Errorf("Capped(%d, %d) = %d, want %d", c.n, c.max, got, c.want)
		}
	}
}

// TestServeAndScrape: a --metrics listener on 127.0.0.1:0 serves the
// shared collectors and the tool's own, which Scrape parses; off (no
// address) is a nil server whose Close and BoundAddr are safe.
func TestServeAndScrape(t *testing.T) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "ocm_test_total", Help: "A test counter."}, []string{"kind"})
	c.WithLabelValues("a").Add(3)
	s, err := Serve("127.0.0.1:0", c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if strings.HasSuffix(s.BoundAddr(), ":0") {
		t.Fatalf("bound address %q", s.BoundAddr())
	}
	f, err := Scrape(context.Background(), "http://"+s.BoundAddr()+"/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if v, ok := f.Value("ocm_test_total", "kind", "a"); !ok || v != 3 {
		t.Errorf("ocm_test_total{kind=a} = %v %v", v, ok)
	}
	if got := f.Labels("ocm_build_info"); !slices.Equal(got, []string{"goversion", "revision", "version"}) {
		t.Errorf("ocm_build_info labels %v", got)
	}
	for _, name := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if f.Type(name) == "" {
			t.Errorf("no %s", name)
		}
	}
	if _, err := Scrape(context.Background(), "http://"+s.BoundAddr()+"/nothing"); err == nil {
		t.Error("a 404 scraped without error")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	off, err := Serve("")
	if err != nil || off != nil || off.BoundAddr() != "" || off.Close() != nil {
		t.Errorf("metrics off: %v %v", off, err)
	}
}
