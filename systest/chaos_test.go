package systest

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
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
// relay, mediator and their player) and restarted on the same ports at
// random moments for OCM_CHAOS (a duration), 10 passive viewers that are
// never killed. No session of a player whose host was not killed ever
// closes (those on killed hosts die with them and are restarted with
// them), and at the end every player is receiving and the tree is
// consistent with all 30 hosts attached.
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
	o := newOverlay(t, "--origin-capacity", "3", "--recovery", policy,
		"--reconnect-step", "500ms", "--handover-timeout", "2s")
	var relays, viewers []string
	for i := 1; i <= chaosRelays; i++ {
		relays = append(relays, o.join(t, fmt.Sprintf("r%02d", i), "--capacity", chaosCapacity).name)
	}
	for i := 1; i <= chaosViewers; i++ {
		viewers = append(viewers, o.join(t, fmt.Sprintf("v%02d", i), "--willing=false").name)
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
	var down []downHost
	kills, restarts, withChildren := 0, 0, 0
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
			if h.med.exited() || !h.player.exited() || len(h.player.events("progress")) > 0 {
				continue // the host is down, its player is running, or its session closed
			}
			gap, limit := time.Second, 3
			if final {
				gap, limit = 2*time.Second, 1<<30
			}
			if tries[h.name] >= limit || time.Since(lastOpen[h.name]) < gap {
				continue
			}
			if tries[h.name] == 0 {
				t.Logf("%s's player could not open its session (%s); opening it again",
					h.name, strings.TrimSpace(tail(h.player.stderrText(), 1)))
			}
			reopened++
			tries[h.name]++
			lastOpen[h.name] = time.Now()
			h.player = startPlayer(t, fmt.Sprintf("%s/player#r%d", h.name, reopened),
				enhanced(h.med.addr, "test", o.origin.addr))
		}
	}
	chaosStart := time.Now()
	end := chaosStart.Add(duration)
	nextKill := chaosStart.Add(pause(rng, 300*time.Millisecond, 2500*time.Millisecond))
	for now := time.Now(); now.Before(end); now = time.Now() {
		for i := 0; i < len(down); i++ {
			if now.After(down[i].back) {
				restart(down[i])
				down = slices.Delete(down, i, i+1)
				i--
			}
		}
		if now.After(nextKill) {
			nextKill = now.Add(pause(rng, 300*time.Millisecond, 2500*time.Millisecond))
			var up []string
			for _, n := range relays {
				if !slices.ContainsFunc(down, func(d downHost) bool { return d.name == n }) {
					up = append(up, n)
				}
			}
			if len(down) < chaosMaxDown {
				victim := up[rng.IntN(len(up))]
				if cur, err := o.srv.tree(t, o.stream); err == nil {
					for _, n := range cur.Nodes {
						if n.Node == victim && len(n.Children) > 0 {
							withChildren++
						}
					}
				}
				if p := o.byName[victim].player; p.exited() && len(p.events("progress")) > 0 {
					checkPlayer(t, p) // its session closed before its host was killed
				}
				o.byName[victim].kill()
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
	t.Logf("chaos over after %s: %d kills (%d of relays with children in the tree), %d restarts",
		time.Since(chaosStart).Round(time.Millisecond), kills, withChildren, restarts)

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
	var players []*proc
	for _, h := range o.hosts {
		players = append(players, h.player)
	}
	waitReceiving(t, "packets after the chaos", players, 70)
	var lines []string
	for _, h := range o.hosts {
		checkPlayer(t, h.player)
		if h.relay.exited() || h.med.exited() {
			t.Errorf("%s's relay or mediator died: relay %v, mediator %v", h.name, h.relay.err, h.med.err)
		}
		if slices.Contains(viewers, h.name) {
			s := progressSeries(h.player)
			lines = append(lines, fmt.Sprintf("%s: %.0f packets, %.0f lost, longest stall %s",
				h.name, s[len(s)-1].packets, s[len(s)-1].lost, ms(longestStall(s, chaosStart))))
		}
	}
	t.Logf("viewers during the chaos:\n%s", strings.Join(lines, "\n"))
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
	ready := h.relay.events("ready")
	if len(ready) == 0 {
		t.Fatalf("%s's relay printed no ready line", h.name)
	}
	name := fmt.Sprintf("%s#%d", h.name, n)
	args := slices.Clone(h.relay.cmd.Args[1:])
	args = append(args, "--control", ready[0].str("control"), "--probe", ready[0].str("probe"))
	r := startRelayAt(t, name+"/relay", args)
	m := startMediatorAt(t, name+"/mediator", h.med.addr, "--resolver", "ocm", "--control", ready[0].str("control"))
	nh := &host{name: h.name, relay: r, med: m}
	nh.player = startPlayer(t, name+"/player", enhanced(m.addr, "test", o.origin.addr))
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
			if len(r.events("ready")) > 0 {
				return r
			}
			if r.exited() {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !r.exited() {
			t.Fatalf("%s printed no ready line within %s", name, patience)
		}
		if !strings.Contains(r.stderrText(), "address already in use") {
			t.Fatalf("%s exited (%v) before its ready line:\n%s", name, r.err, r.stderrText())
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("%s: its ports stayed in use", name)
	return nil
}
