package relay

import (
	"fmt"
	"net"
	"slices"
	"strings"
)

// ParseServers parses --server: one ocm-server address HOST:PORT, or a
// comma-separated list of them, the active server first and its standbys
// after it. Empty is no server (the origin's host is taken on first use).
// An entry that is empty, not HOST:PORT, or listed twice is an error
// naming it.
func ParseServers(s string) ([]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []string
	for i, e := range strings.Split(s, ",") {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			return nil, fmt.Errorf("server list %q: entry %d is empty (want HOST:PORT[,HOST:PORT...])", s, i+1)
		case slices.Contains(out, e):
			return nil, fmt.Errorf("server list %q: entry %d, %s, is listed twice", s, i+1, e)
		}
		if _, port, err := net.SplitHostPort(e); err != nil {
			return nil, fmt.Errorf("server list %q: entry %d, %q: %w", s, i+1, e, err)
		} else if port == "" {
			return nil, fmt.Errorf("server list %q: entry %d, %q: missing port", s, i+1, e)
		}
		out = append(out, e)
	}
	return out, nil
}

// failover moves the server in use on from addr, the one whose session
// was lost or could not be made, to the next in the list, wrapping
// around: the relay stays on whichever it reaches next, and never moves
// back to the first by itself. It returns the server now in use, and
// whether it changed (never with one server, nor when another caller
// moved on already).
func (st *state) failover(addr string) (string, bool) {
	if st.server != addr || len(st.servers) < 2 {
		return st.server, false
	}
	i := slices.Index(st.servers, addr)
	if i < 0 {
		return st.server, false
	}
	st.server = st.servers[(i+1)%len(st.servers)]
	return st.server, true
}
