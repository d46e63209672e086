package systest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/lab"
)

// Chaos test sizes: relay hosts are killed and restarted at random; viewer
// hosts are passive (--willing=false), so they always hang below a relay
// host or the origin, and are never killed.
const (
	chaosRelays   = 20
	chaosViewers  = 10
	chaosMaxDown  = 4 // relay hosts down at once, at most
	chaosCapacity = "3"
)

// TestChaos: 30 viewer hosts, 20 of them relays that are killed (SIGKILL:
// relay, mediator and their player) and restarted on the same ports, or
// frozen (SIGSTOP of relay and mediator, SIGCONT after up to 3 s), at
// random moments for OCM_CHAOS (a duration), 10 passive viewers that are
// never killed. Every 8 to 16 s the origin or the ocm-server is killed and
// started again on its address after a short outage. No session of a
// player whose host was not killed ever closes (those on killed hosts die
// with them and are restarted with them), and at the end every player is
// receiving and the tree is consistent with all 30 hosts attached. The
// log ends with each viewer's longest silence.
//
// Off by default: OCM_CHAOS=2m go test -run TestChaos ./systest runs it for
// two minutes. The schedule is random from a seed the test prints;
// OCM_CHAOS_SEED=N replays it (the timing of the processes still varies).
// OCM_CHAOS_RECOVERY picks the server's policy (default repair).
func TestChaos(t *testing.T) {
	systemTest(t)
	spec := os.Getenv("OCM_CHAOS")
	if spec == "" {
		t.Skip("chaos test, off by default: set OCM_CHAOS to a duration to run it, e.g. " +
			"OCM_CHAOS=2m go test -run TestChaos ./systest (OCM_CHAOS_SEED=N replays a schedule)")
	}
	duration, err := time.ParseDuration(spec)
	if err != nil || duration <= 0 {
		t.Fatalf("OCM_CHAOS=%q: want a duration such as 60s or 2m", spec)
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("OCM_CHAOS_SEED"); s != "" {
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("OCM_CHAOS_SEED=%q: want an unsigned integer", s)
		}
	}
	policy := os.Getenv("OCM_CHAOS_RECOVERY")
	if policy == "" {
		policy = "repair"
	}
	t.Logf("chaos for %s, recovery %s, seed %d (replay with OCM_CHAOS_SEED=%d)", duration, policy, seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x0c3))

	began := time.Now()
	serverArgs := []string{"--origin-capacity", "3", "--recovery", policy,
		"--reconnect-step", "500ms", "--handover-timeout", "2s"}
	o := newOverlay(t, serverArgs...)
	var relays, viewers []string
	for i := 1; i <= chaosRelays; i++ {
		relays = append(relays, o.join(t, fmt.Sprintf("r%02d", i), "--capacity", chaosCapacity).Name)
	}
	for i := 1; i <= chaosViewers; i++ {
		viewers = append(viewers, o.join(t, fmt.Sprintf("v%02d", i), "--willing=false").Name)
	}
	all := o.names()
	tv := o.srv.waitTree(t, o.stream, all)
	t.Logf("%d hosts joined in %s:\n%s", len(all), time.Since(began).Round(time.Millisecond), tv)

	// The schedule: after a random pause, kill a random relay host that is
	// up (unless chaosMaxDown are down); each killed host comes back after
	// a random downtime, on the same ports.
	type downHost struct {
		name string
		back time.Time
	}
	var down, frozen []downHost
	kills, restarts, withChildren, freezes := 0, 0, 0, 0
	isOut := func(n string) bool {
		is := func(d downHost) bool { return d.name == n }
		return slices.ContainsFunc(down, is) || slices.ContainsFunc(frozen, is)
	}
	// The origin and the server: at most one of them is away at a time.
	infra := chaosInfra{o: o, serverArgs: serverArgs}
	lastOpen := map[string]time.Time{} // when a host's player was last started
	tries := map[string]int{}          // its player's reopens since the host's last restart
	restart := func(d downHost) {
		h := o.byName[d.name]
		restarts++
		nh := restartHost(t, o, h, restarts)
		tries[d.name], lastOpen[d.name] = 0, time.Now()
		o.byName[d.name] = nh
		for i := range o.hosts {
			if o.hosts[i] == h {
				o.hosts[i] = nh
			}
		}
	}
	// A player started on a restarted host may be refused (no parent yet):
	// a user would open it again, a few times while the chaos goes on,
	// every 2 s at the end. Only sessions that were open must never close.
	reopened := 0
	reopen := func(final bool) {
		for _, h := range o.hosts {
			if h.Med.Exited() || !h.player.Exited() || len(eventsOf[event.ReadProgress](h.player)) > 0 {
				continue // the host is down, its player is running, or its session closed
			}
			gap, limit := time.Second, 3
			if final {
				gap, limit = 2*time.Second, 1<<30
			}
			if tries[h.Name] >= limit || time.Since(lastOpen[h.Name]) < gap {
				continue
			}
			if tries[h.Name] == 0 {
				t.Logf("%s's player could not open its session (%s); opening it again",
					h.Name, strings.TrimSpace(tail(h.player.Stderr(), 1)))
			}
			reopened++
			tries[h.Name]++
			lastOpen[h.Name] = time.Now()
			h.player = startPlayer(t, fmt.Sprintf("%s/player#r%d", h.Name, reopened),
				enhanced(h.Med.Addr, "test", o.origin.Addr))
		}
	}
	chaosStart := time.Now()
	end := chaosStart.Add(duration)
	nextKill := chaosStart.Add(pause(rng, 300*time.Millisecond, 2500*time.Millisecond))
	nextInfra := chaosStart.Add(pause(rng, 8*time.Second, 16*time.Second))
	for now := time.Now(); now.Before(end); now = time.Now() {
		for i := 0; i < len(down); i++ {
			if now.After(down[i].back) {
				restart(down[i])
				down = slices.Delete(down, i, i+1)
				i--
			}
		}
		for i := 0; i < len(frozen); i++ {
			if now.After(frozen[i].back) {
				o.byName[frozen[i].name].Signal(syscall.SIGCONT)
				frozen = slices.Delete(frozen, i, i+1)
				i--
			}
		}
		infra.step(t, now)
		if now.After(nextInfra) {
			nextInfra = now.Add(pause(rng, 8*time.Second, 16*time.Second))
			infra.fault(t, rng, now)
		}
		if now.After(nextKill) {
			nextKill = now.Add(pause(rng, 300*time.Millisecond, 2500*time.Millisecond))
			var up []string
			for _, n := range relays {
				if !isOut(n) {
					up = append(up, n)
				}
			}
			if len(down)+len(frozen) < chaosMaxDown && rng.IntN(3) == 0 {
				// A frozen host: its processes live on, its sockets stay
				// open, and nothing answers; its player's session must
				// survive it like any other.
				victim := up[rng.IntN(len(up))]
				o.byName[victim].Signal(syscall.SIGSTOP)
				freezes++
				frozen = append(frozen, downHost{victim, now.Add(pause(rng, 500*time.Millisecond, 3*time.Second))})
			} else if len(down)+len(frozen) < chaosMaxDown {
				victim := up[rng.IntN(len(up))]
				if cur, err := o.srv.tree(t, o.stream); err == nil {
					for _, n := range cur.Nodes {
						if n.Node == victim && len(n.Children) > 0 {
							withChildren++
						}
					}
				}
				if p := o.byName[victim].player; p.Exited() && len(eventsOf[event.ReadProgress](p)) > 0 {
					checkPlayer(t, p) // its session closed before its host was killed
				}
				o.byName[victim].Kill()
				kills++
				down = append(down, downHost{victim, now.Add(pause(rng, 500*time.Millisecond, 4*time.Second))})
			}
		}
		reopen(false)
		time.Sleep(20 * time.Millisecond)
	}
	for _, d := range down {
		restart(d)
	}
	for _, d := range frozen {
		o.byName[d.name].Signal(syscall.SIGCONT)
	}
	infra.end(t)
	t.Logf("chaos over after %s: %d kills (%d of relays with children in the tree), %d restarts, %d freezes, "+
		"%d origin restarts, %d server restarts",
		time.Since(chaosStart).Round(time.Millisecond), kills, withChildren, restarts, freezes,
		infra.originRestarts, infra.serverRestarts)

	// The end state: the tree consistent with every host attached, every
	// player receiving, no session closed.
	settle := time.Now()
	var after treeView
	for {
		reopen(true)
		if after, err = o.srv.awaitTree(t, o.stream, all, 0); err == nil || time.Since(settle) > patience {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if reopened > 0 {
		t.Logf("%d players on restarted hosts were opened again", reopened)
	}
	if err != nil {
		t.Fatalf("after the chaos the tree is not valid with all %d hosts within %s: %v\nmissing: %v\n%s",
			len(all), patience, err, missing(after, all), after)
	}
	t.Logf("tree valid %s after the chaos:\n%s", time.Since(settle).Round(time.Millisecond), after)
	waitReceiving(t, "packets after the chaos", o.players(), 70)
	var lines []string
	for _, h := range o.hosts {
		checkHost(t, h)
		if slices.Contains(viewers, h.Name) {
			s := progressSeries(h.player)
			lines = append(lines, fmt.Sprintf("%s: %.0f packets, %.0f lost, longest stall %s",
				h.Name, s[len(s)-1].packets, s[len(s)-1].lost, ms(longestStall(s, chaosStart))))
		}
	}
	t.Logf("viewers during the chaos (no session closed):\n%s", strings.Join(lines, "\n"))
}

// chaosInfra kills the origin or the ocm-server and starts it again on
// the same address after a short outage: shorter than a player's own read
// timeout (10 s), which no relay can make up for.
type chaosInfra struct {
	o          *overlay
	serverArgs []string

	originBack, serverBack         time.Time // zero while it is up
	originRestarts, serverRestarts int
}

func (c *chaosInfra) fault(t *testing.T, rng *rand.Rand, now time.Time) {
	if !c.originBack.IsZero() || !c.serverBack.IsZero() {
		return
	}
	if rng.IntN(2) == 0 {
		t.Logf("chaos: killing the origin")
		c.o.origin.Kill()
		c.originBack = now.Add(pause(rng, time.Second, 3*time.Second))
		return
	}
	t.Logf("chaos: killing the ocm-server")
	c.o.srv.Kill()
	c.serverBack = now.Add(pause(rng, 500*time.Millisecond, 2*time.Second))
}

// step starts again what is due.
func (c *chaosInfra) step(t *testing.T, now time.Time) {
	if !c.originBack.IsZero() && now.After(c.originBack) {
		c.originRestarts++
		c.o.origin = startMediatorAt(t, fmt.Sprintf("origin#%d", c.originRestarts), c.o.origin.Addr,
			"--test-source", "test")
		c.originBack = time.Time{}
	}
	if !c.serverBack.IsZero() && now.After(c.serverBack) {
		c.serverRestarts++
		args := append(slices.Clone(c.serverArgs), "--listen", c.o.srv.OCM, "--http", c.o.srv.HTTP)
		c.o.srv = startServer(t, fmt.Sprintf("server#%d", c.serverRestarts), args...)
		c.serverBack = time.Time{}
	}
}

// end starts again whatever is still away.
func (c *chaosInfra) end(t *testing.T) {
	far := time.Now().Add(time.Hour)
	c.step(t, far)
}

func pause(rng *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(rng.Int64N(int64(hi-lo)))
}

// longestStall is the longest time after from during which a player's
// progress lines showed no new packet.
func longestStall(series []sample, from time.Time) time.Duration {
	var longest time.Duration
	var since time.Time // the last line with new packets
	for i, s := range series {
		if i == 0 || s.packets > series[i-1].packets {
			since = s.at
			continue
		}
		if s.at.After(from) {
			longest = max(longest, s.at.Sub(since))
		}
	}
	return longest
}

// restartHost starts a killed host again as a restarted machine would: its
// relay (same node id), mediator and player, on the ports it had; it does
// not wait for the player's packets. n numbers the restarts in the logs.
func restartHost(t *testing.T, o *overlay, h *host, n int) *host {
	t.Helper()
	ready := eventsOf[event.RelayReady](h.Relay)
	if len(ready) == 0 {
		t.Fatalf("%s's relay printed no ready line", h.Name)
	}
	name := fmt.Sprintf("%s#%d", h.Name, n)
	args := slices.Clone(h.Relay.Args)
	args = append(args, "--control", ready[0].Control, "--probe", ready[0].Probe)
	r := startRelayAt(t, name+"/relay", args)
	m := startMediatorAt(t, name+"/mediator", h.Med.Addr, "--resolver", "ocm", "--control", ready[0].Control)
	nh := &host{Host: &lab.Host{Name: h.Name, Relay: r, Med: m}}
	nh.player = startPlayer(t, name+"/player", enhanced(m.Addr, "test", o.origin.Addr))
	return nh
}

// startRelayAt starts ocm-relay with args (fixed addresses among them) and
// waits for its ready line; it retries while a port is still held.
func startRelayAt(t *testing.T, name string, args []string) *proc {
	t.Helper()
	for range 20 {
		r := start(t, name, tool("ocm-relay"), args...)
		deadline := time.Now().Add(patience)
		for time.Now().Before(deadline) {
			if len(eventsOf[event.RelayReady](r)) > 0 {
				return r
			}
			if r.Exited() {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !r.Exited() {
			t.Fatalf("%s printed no ready line within %s", name, patience)
		}
		if !strings.Contains(r.Stderr(), "address already in use") {
			t.Fatalf("%s exited (%v) before its ready line:\n%s", name, r.Err(), r.Stderr())
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: its ports stayed in use", name)
	return nil
}
