package lab

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"syscall"

	"github.com/ocm-overlay/ocm/internal/api"
	"github.com/ocm-overlay/ocm/internal/event"
)

// mediatorDefaults come before a caller's own flags, which override them:
// TCP only, on a free loopback port.
var mediatorDefaults = []string{"--listen", "127.0.0.1:0", "--rtp", "off", "--rtcp", "off"}

// Mediator is a running rtsp-mediator.
type Mediator struct {
	*Proc
	Addr string // the RTSP HOST:PORT from its ready line
}

// StartMediator starts rtsp-mediator with args after the defaults and
// waits for its ready line; the error holds its stderr if it exits first.
// launcher (none if empty) runs it, such as prlimit or ip netns exec.
func StartMediator(c Cleaner, tools Tools, name string, launcher []string, args ...string) (*Mediator, error) {
	argv := append(append(append([]string(nil), launcher...), tools.Path("rtsp-mediator")), mediatorDefaults...)
	p, err := Start(c, name, argv[0], append(argv[1:], args...)...)
	if err != nil {
		return nil, err
	}
	ready, err := Ready[event.MediatorReady](context.Background(), p, Patience)
	if err == nil && ready.RTSP == "" {
		err = errNotReady(p, p.Lines()[0])
	}
	if err != nil {
		p.Kill()
		return nil, err
	}
	return &Mediator{Proc: p, Addr: ready.RTSP}, nil
}

// Enhanced is the URL a player opens on a mediator to get media from the
// origin: rtsp://MEDIATOR/MEDIA?ORIGIN.
func Enhanced(mediatorAddr, media, originAddr string) string {
	return "rtsp://" + mediatorAddr + "/" + media + "?" + originAddr
}

// Server is a running ocm-server.
type Server struct {
	*Proc
	OCM, HTTP string      // its relay listener and its HTTP API
	API       *api.Client // a client of that API
}

// serverDefaults: free loopback ports, and heartbeats and reports often
// enough for a short run.
var serverDefaults = []string{"--listen", "127.0.0.1:0", "--http", "127.0.0.1:0", "--heartbeat", "500ms",
	"--report-interval", "1s"}

// StartServer starts ocm-server with args after the defaults and waits for
// its ready line.
func StartServer(c Cleaner, tools Tools, name string, args ...string) (*Server, error) {
	p, err := Start(c, name, tools.Path("ocm-server"), append(append([]string(nil), serverDefaults...), args...)...)
	if err != nil {
		return nil, err
	}
	ready, err := Ready[event.ServerReady](context.Background(), p, Patience)
	if err != nil {
		p.Kill()
		return nil, err
	}
	client, err := api.New(ready.HTTP)
	if err != nil {
		p.Kill()
		return nil, err
	}
	return &Server{Proc: p, OCM: ready.OCM, HTTP: ready.HTTP, API: client}, nil
}

// Post sends an action to the server's API.
func (s *Server) Post(path string, q url.Values) error {
	_, err := s.API.Do(context.Background(), http.MethodPost, path, q)
	return err
}

// StartRelay starts the ocm-relay of node name, connected to the server at
// server, with args after the defaults, and returns it and its control
// address, for a mediator's --control.
func StartRelay(c Cleaner, tools Tools, name, server string, args ...string) (*Proc, string, error) {
	args = append([]string{"--server", server, "--control", "127.0.0.1:0", "--probe", "127.0.0.1:0",
		"--node-id", name}, args...)
	r, err := Start(c, name+"/relay", tools.Path("ocm-relay"), args...)
	if err != nil {
		return nil, "", err
	}
	ready, err := Ready[event.RelayReady](context.Background(), r, Patience)
	if err != nil {
		r.Kill()
		return nil, "", err
	}
	return r, ready.Control, nil
}

// Host is one viewer host: an ocm-relay and its rtsp-mediator with
// --resolver ocm.
type Host struct {
	Name  string
	Relay *Proc
	Med   *Mediator
}

// StartHost starts the relay (relayArgs) and the mediator (medArgs) of one
// host.
func StartHost(c Cleaner, tools Tools, name, server string, medArgs, relayArgs []string) (*Host, error) {
	r, control, err := StartRelay(c, tools, name, server, relayArgs...)
	if err != nil {
		return nil, err
	}
	m, err := StartMediator(c, tools, name+"/mediator", nil,
		append([]string{"--resolver", "ocm", "--control", control}, medArgs...)...)
	if err != nil {
		r.Kill()
		return nil, err
	}
	return &Host{Name: name, Relay: r, Med: m}, nil
}

// Signal sends sig to the host's relay and mediator (SIGSTOP freezes
// them, SIGCONT thaws them).
func (h *Host) Signal(sig os.Signal) {
	_ = h.Relay.Signal(sig)
	_ = h.Med.Signal(sig)
}

// Kill is the host dying: SIGKILL to its relay, then its mediator. The
// relay goes first: a relay that outlives its mediator even for a moment
// sees the mediator's streams end and leaves the tree gracefully, and the
// server would see a departure instead of a failure.
func (h *Host) Kill() {
	_ = h.Relay.Signal(syscall.SIGKILL)
	_ = h.Med.Signal(syscall.SIGKILL)
	h.Relay.Kill() // waits for the exit
	h.Med.Kill()
}

// Stop is the host leaving: SIGINT, so the relay says goodbye.
func (h *Host) Stop() {
	_ = h.Med.Stop()
	_ = h.Relay.Stop()
}
