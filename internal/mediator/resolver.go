package mediator

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/ocm-overlay/ocm/internal/streamurl"
)

// Upstream is where a stream is pulled from.
type Upstream struct {
	URL  string // the RTSP URL to open
	Addr string // HOST:PORT of the upstream, as excluded after a failure
	// Node is the upstream's node id where the resolver knows one ("origin"
	// for the origin itself).
	Node string
	// Redirect asks the mediator to answer the player with a 302 to URL
	// instead of relaying.
	Redirect bool
}

// ResolveRequest asks a resolver for an upstream of one stream.
type ResolveRequest struct {
	Origin  streamurl.Origin
	Exclude []string // upstream addresses that failed recently
}

// Resolver chooses where a stream comes from. Implementations must be safe
// for concurrent use.
type Resolver interface {
	Resolve(ctx context.Context, req ResolveRequest) (Upstream, error)
}

// Notifier is implemented by resolvers that want to know what the mediator
// does with the upstreams they chose (the ocm resolver reports them to the
// server).
type Notifier interface {
	// Active is called when a stream starts flowing from up.
	Active(stream streamurl.Origin, up Upstream)
	// Inactive is called when the mediator stops relaying a stream.
	Inactive(stream streamurl.Origin)
}

// Direct pulls every stream from its origin: the overlay-less mode.
type Direct struct{}

// Resolve returns the origin itself, whatever failed before: there is
// nowhere else to go.
func (Direct) Resolve(_ context.Context, req ResolveRequest) (Upstream, error) {
	return Upstream{URL: req.Origin.URL(), Addr: req.Origin.Addr(), Node: "origin"}, nil
}

// Parents pulls through preconfigured upstream mediators, passing the
// enhanced URL up: the first one not excluded, else the first.
type Parents struct {
	Addrs []string // HOST:PORT of upstream mediators, in order of preference
}

// Resolve returns the first parent that has not failed recently.
func (p Parents) Resolve(_ context.Context, req ResolveRequest) (Upstream, error) {
	if len(p.Addrs) == 0 {
		return Upstream{}, fmt.Errorf("no parent configured")
	}
	pick := p.Addrs[0]
	for _, a := range p.Addrs {
		if !slices.Contains(req.Exclude, a) {
			pick = a
			break
		}
	}
	return Upstream{URL: req.Origin.EnhancedURL(pick), Addr: pick, Node: "parent:" + pick}, nil
}

// ParseResolver reads the --resolver flag for the resolvers this package
// knows: "direct" and "parent:HOST:PORT[,HOST:PORT...]". Other kinds (ocm,
// redirect) are built by their own packages.
func ParseResolver(spec string) (Resolver, error) {
	switch {
	case spec == "direct" || spec == "":
		return Direct{}, nil
	case strings.HasPrefix(spec, "parent:"):
		var addrs []string
		for _, a := range strings.Split(strings.TrimPrefix(spec, "parent:"), ",") {
			if _, _, err := net.SplitHostPort(a); err != nil {
				return nil, fmt.Errorf("resolver %q: parent %q is not HOST:PORT: %w", spec, a, err)
			}
			addrs = append(addrs, a)
		}
		return Parents{Addrs: addrs}, nil
	}
	return nil, fmt.Errorf("unknown resolver %q (want direct, parent:HOST:PORT, ocm or redirect)", spec)
}
