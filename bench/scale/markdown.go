package main

import (
	"fmt"
	"io"
	"slices"

	"github.com/ocm-overlay/ocm/bench/scale/sim"
	ocmrelay "github.com/ocm-overlay/ocm/internal/relay"
	"github.com/ocm-overlay/ocm/internal/server"
)

// printQuality is the simulator's summary on stdout.
func printQuality(w io.Writer, r *sim.Report) {
	fmt.Fprintf(w, "\ntree quality, %d relays (seed %d)\n", r.SimRelays, r.SimSeed)
	fmt.Fprintf(w, "%-32s %9s %9s %11s %11s %8s %9s %9s\n", "selection", "avg depth", "max depth", "avg stretch",
		"p95 stretch", "cross", "origin", "jain")
	for _, v := range variants(r) {
		fmt.Fprintf(w, "%-32s %9.2f %9d %11.2f %11.2f %7.1f%% %9d %9.2f\n", v.name, v.AvgDepth, v.MaxDepth,
			v.AvgStretch, v.P95Stretch, 100*v.CrossRegion, v.OriginFan, v.JainLoad)
	}
	fmt.Fprintf(w, "%-10s %7s %8s %13s %12s %9s %10s %10s\n", "recovery", "killed", "affected", "all attached",
		"all media", "kept", "depth", "stalled")
	for _, x := range r.Recovery {
		fmt.Fprintf(w, "%-10s %7d %8d %10.0f ms %9.0f ms %8.1f%% %5.2f/%-4d %10d\n", x.Policy, x.Killed, x.Affected,
			x.AllAttachedMs, x.AllMediaMs, 100*x.EdgesKept, x.AvgDepthAfter, x.MaxDepthAfter, x.Stalled)
	}
}

type namedVariant struct {
	name string
	sim.Variant
}

func variants(r *sim.Report) []namedVariant {
	return []namedVariant{{fmt.Sprintf("default, after %g min", r.AdaptMinutes), r.Default},
		{"default, at the join", r.DefaultAtJoin}, {"random", r.Random},
		{"without adaptation", r.NoAdapt}, {"without adaptation nor near candidates", r.NoNear}}
}

// writeMarkdown writes bench/scale.md: the load tables when the load part
// ran (and says so when it did not), the simulator's tables.
func writeMarkdown(w io.Writer, rep *report) {
	fmt.Fprintf(w, "# bench/scale: one ocm-server, thousands of relays\n\n")
	fmt.Fprintf(w, "Written by `go run ./bench/scale` (`make bench-scale`); the JSON is `bench/scale.json`, "+
		"the plot `bench/scale.svg`. Every figure below is from that run; `go run ./bench/scale --help` says what each one is.\n\n")
	fmt.Fprintf(w, "## Load: real TCP, one server\n\n")
	if rep.Load == nil {
		fmt.Fprintf(w, "Not run in this report (`--sim-only`): the load keys (`joins_per_s`, `decision_ms_p50`, "+
			"`decision_ms_p99`, `bytes_per_node`, `steady_cpu_fraction`, `tree_api_ms`, `recovery_ms_1000_descendants`) "+
			"are missing from `bench/scale.json`. Run `make bench-scale` for them (minutes).\n\n")
	} else {
		fmt.Fprintf(w, "| relays | batch | failed | joins/s | decision p50 ms | p99 ms | full/join | bytes/relay | CPU joining | CPU steady | CPU in the first improvement round (rounds) | CPU steady, rounds settled | tree API ms | repair ms (descendants) |\n")
		fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, r := range rep.Runs {
			fmt.Fprintf(w, "| %d | %d | %d | %.0f | %.2f | %.2f | %.2f | %.0f | %.2f | %.3f | %.3f (%d) | %.3f | %.1f | %.0f (%d) |\n",
				r.Relays, r.Batch, r.Failed, r.JoinsPerS, r.DecisionP50, r.DecisionP99, r.FullPerJoin, r.BytesPerNode,
				r.CPUJoining, r.SteadyCPU, r.ImproveCPU, r.ImproveRounds, r.LongRunCPU, r.TreeAPIMs, r.RecoveryMs,
				r.RecoveryDescendants)
		}
		fmt.Fprintln(w)
	}
	r := rep.Report
	if r == nil {
		return
	}
	fmt.Fprintf(w, "## Tree quality: the simulator, %d relays (seed %d)\n\n", r.SimRelays, r.SimSeed)
	fmt.Fprintf(w, "`bench/scale/sim` drives the real code in process, no sockets: the server's candidate choice, "+
		"promises and joins (`internal/tree`'s Forest with ocm-server's k, near candidates and promise rule) and each "+
		"relay's choice (`internal/probe` Evaluate and Decide with the default weights), fed probe answers whose RTT "+
		"comes from a latency map: 8 regions (inter-region RTTs 20-250 ms from public measurements), hosts in a "+
		"15 ms disc in their region plus a 0.5-3 ms access delay, addresses from 6 ISPs' /16s per region (5%% of hosts "+
		"with an address of another region: VPNs, mobile exits). Capacities: 15%% passive, 75%% 2-4, 10%% 8-16; the "+
		"origin in eu-west with ocm-server's origin capacity. Relays arrive %d a second in random order (a flash crowd); "+
		"a relay whose round found every parent full asks again without them, as ocm-relay does. "+
		"The server's processing time is taken as zero.\n\n", sim.DefaultArrivalPerS)
	fmt.Fprintf(w, "Targets for the default: average stretch under 2, average depth under log2 N = %.1f, "+
		"cross-region edges under 10%%.\n\n", r.Default.Log2N)
	fmt.Fprintf(w, "| selection | avg depth | max depth | avg stretch | p50 / p95 stretch | stretch outside the origin's region | cross-region edges | origin fan-out | load Jain | relays full | relays idle | refusals/join | requests failed |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, v := range variants(r) {
		fmt.Fprintf(w, "| %s | %.2f | %d | %.2f | %.2f / %.2f | %.2f | %.1f%% | %d | %.2f | %.0f%% | %.0f%% | %.2f | %d |\n", v.name,
			v.AvgDepth, v.MaxDepth, v.AvgStretch, v.P50Stretch, v.P95Stretch, v.AvgStretchAway, 100*v.CrossRegion,
			v.OriginFan, v.JainLoad, 100*v.FullShare, 100*v.IdleShare, v.RefusalsPerJoin, v.NoRoom)
	}
	d := r.Default
	fmt.Fprintf(w, "\nDefault against the targets: average depth %.2f against log2 N %.1f: %s; cross-region edges "+
		"%.1f%% against 10%%: %s; average stretch %.2f against 2: %s.\n", d.AvgDepth, d.Log2N, verdict(d.AvgDepth < d.Log2N),
		100*d.CrossRegion, verdict(d.CrossRegion < 0.1), d.AvgStretch, verdict(d.AvgStretch < 2))
	fmt.Fprintf(w, "\nThe tree learns latency (docs/DESIGN.md, Adaptation): each relay reports its RTT to its parent, so "+
		"ocm-server knows every relay's path (the RTT along the tree from the origin) and sends it with each candidate. "+
		"A full parent whose farthest child is far (the origin, and the shallowest such relays, `ocm-server --displace`) "+
		"is offered too: a relay much closer to it takes that child's slot and the child moves, make-before-break, "+
		"under the newcomer or wherever it finds room (displacement). Every relay asks again now and then "+
		"(`ocm-relay --improve-every`, %s, doubling while it finds nothing) and moves, make-before-break, when "+
		"another parent brings the stream sooner by 20%% and 5 ms. Without it the first relays to arrive, from any "+
		"region, keep the origin's few slots and the levels below, and the relays next to the origin reach it through "+
		"other continents.\n\n", ocmrelay.DefaultImproveEvery)
	if len(d.Timeline) > 0 {
		fmt.Fprintf(w, "The default tree while it adapts (minutes after the crowd arrived):\n\n")
		fmt.Fprintf(w, "| minutes | avg stretch | avg depth | cross-region edges |\n|---|---|---|---|\n")
		for _, p := range d.Timeline {
			fmt.Fprintf(w, "| %g | %.2f | %.2f | %.1f%% |\n", p.Minutes, p.AvgStretch, p.AvgDepth, 100*p.CrossRegion)
		}
		fmt.Fprintf(w, "\nIt took %d improvement rounds (%d moves) and %d displacements. ", d.Improves, d.Moves, d.Displaced)
	}
	fmt.Fprintf(w, "What remains is mostly the origin's own region: its %.0f%% of the relays are a few ms from the origin "+
		"(average stretch %.1f), each hop of the tree costing about their whole direct RTT; outside it the average "+
		"stretch is %.2f.\n", 100*d.NearShare, d.AvgStretchNear, d.AvgStretchAway)
	fmt.Fprintf(w, "\n- default: ocm-server offers its k best (lowest level, least loaded), `--near-candidates` "+
		"relays sharing the longest address prefix with the requester (default %d) and full parents to displace "+
		"a far child of; the relay scores them with its probes' RTT and runs its improvement rounds.\n",
		server.DefaultNearCandidates)
	fmt.Fprintf(w, "- random: the same server, but each relay takes a random one of the eligible candidates, and nothing adapts.\n")
	fmt.Fprintf(w, "- without adaptation: no paths, no displacement, no improvement rounds (the selection before them); "+
		"without near candidates as well: `--near-candidates 0`.\n")
	fmt.Fprintf(w, "- Requests failed: resolves that found no parent with room within ocm-relay's --join-attempts "+
		"rounds and --join-wait (the viewer's request fails; its player asks again a second later).\n")
	fmt.Fprintf(w, "- Load balance is over the relays that relay: Jain index of children/capacity, the shares full and with no child.\n\n")

	if len(r.OriginCaps) > 0 {
		fmt.Fprintf(w, "Default selection with a larger origin capacity (`ocm-server --origin-capacity`; %d above):\n\n", r.Default.OriginFan)
		fmt.Fprintf(w, "| origin capacity | avg depth | avg stretch | p95 stretch | cross-region edges |\n|---|---|---|---|---|\n")
		for _, c := range r.OriginCaps {
			fmt.Fprintf(w, "| %d | %.2f | %.2f | %.2f | %.1f%% |\n", c.Capacity, c.AvgDepth, c.AvgStretch, c.P95Stretch, 100*c.Cross)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "### Depth and stretch against N\n\n![depth and stretch against relays](scale.svg)\n\n")
	fmt.Fprintf(w, "| relays | log2 N | default avg / max depth | default stretch | default cross | random avg / max depth | random stretch | random cross |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|\n")
	for _, p := range r.Sweep {
		fmt.Fprintf(w, "| %d | %.1f | %.2f / %d | %.2f | %.1f%% | %.2f / %d | %.2f | %.1f%% |\n", p.Relays, p.Log2N,
			p.DefaultDepth, p.DefaultMax, p.DefaultStr, 100*p.DefaultCross, p.RandomDepth, p.RandomMax, p.RandomStr,
			100*p.RandomCross)
	}
	fmt.Fprintf(w, "\n### Recovery: %.0f%% of the relays killed at once\n\n", 100*r.KillShare)
	fmt.Fprintf(w, "| policy | killed | survivors affected | all attached | median attached | all media back | edges kept | depth after (avg / max) | stall resolves | reconnects sent | unattached at 60 s |\n")
	fmt.Fprintf(w, "|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, x := range r.Recovery {
		fmt.Fprintf(w, "| %s | %d | %d | %.0f ms | %.0f ms | %.0f ms | %.1f%% | %.2f / %d | %d | %d | %d |\n", x.Policy,
			x.Killed, x.Affected, x.AllAttachedMs, x.P50AttachedMs, x.AllMediaMs, 100*x.EdgesKept, x.AvgDepthAfter,
			x.MaxDepthAfter, x.Stalled, x.Reconnects, x.Unattached)
	}
	defer writeIslands(w, r.Islands)
	fmt.Fprintf(w, "\nModelled: the relays' processes are killed, so the server sees each connection close one one-way "+
		"delay later (a host that vanishes without closing is seen only after 3 missed heartbeats, 6 s more); the server "+
		"applies the policy with the real `Forest.RemoveNode` and sends its reconnects (gradual: the next level when the "+
		"previous one has rejoined or after 500 ms, a relay early once its old parent is back, as ocm-server does); a told "+
		"relay resolves as ocm-relay does (excluding the failed parent, or preferring its old one after an ancestor "+
		"failed); every relay below a killed one loses its media, and one whose media is not back within the mediator's "+
		"1 s stall timeout resolves by itself (repair, drop: at once, excluding the parent it pulled from; reconnect, "+
		"gradual: it waits for the server unless its parent is still in the tree); media flows again 3 RTTs after a "+
		"join (RTSP setup). Not modelled: the server's processing time (the load part measures it), lost messages, "+
		"re-attachment from reports, the black-hole detector. \"All attached\" is until every survivor's chain reaches "+
		"the origin again; \"edges kept\" is the share of survivors' edges to a surviving parent unchanged.\n")
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

// writeIslands is the million-viewer model's section.
func writeIslands(w io.Writer, is *sim.Islands) {
	if is == nil {
		return
	}
	fmt.Fprintf(w, "\n## Islands: %d regional servers x %d relays = %d viewers\n\n", is.Islands, is.PerIsland, is.Viewers)
	sample := "every island is simulated"
	if is.Simulated < is.Islands {
		sample = fmt.Sprintf("%d of the %d islands are simulated (spread over the upper tree) and the others "+
			"assumed alike: the end-to-end figures are over the simulated ones", is.Simulated, is.Islands)
	}
	fmt.Fprintf(w, "The origin's ocm-server holds an upper tree whose relays are the islands' roots (placed over "+
		"the regions by their shares, capacity %d each); each island is a regional ocm-server whose origin is its "+
		"root, with its relays in the root's region, built by the same simulator (%s). Nothing is global: each "+
		"server holds its own relays only. End to end, a relay's depth is its root's depth plus its own in its "+
		"island, its stretch the RTT along both trees over its direct RTT to the origin.\n\n", sim.UpperCapacity, sample)
	fmt.Fprintf(w, "| tree | avg depth | max depth | avg stretch | p50 / p95 stretch | cross-region edges |\n|---|---|---|---|---|---|\n")
	fmt.Fprintf(w, "| upper (roots under the origin) | %.2f | %d | %.2f | %.2f / %.2f | %.1f%% |\n", is.Upper.AvgDepth,
		is.Upper.MaxDepth, is.Upper.AvgStretch, is.Upper.P50Stretch, is.Upper.P95Stretch, 100*is.Upper.CrossRegion)
	fmt.Fprintf(w, "| one island (its root as origin) | %.2f | %d | %.2f | %.2f / %.2f | %.1f%% |\n", is.Island.AvgDepth,
		is.Island.MaxDepth, is.Island.AvgStretch, is.Island.P50Stretch, is.Island.P95Stretch, 100*is.Island.CrossRegion)
	fmt.Fprintf(w, "| end to end | %.2f | %d | %.2f | %.2f / %.2f | %.3f%% |\n\n", is.AvgDepth, is.MaxDepth,
		is.AvgStretch, is.P50Stretch, is.P95Stretch, 100*is.CrossRegion)
	fmt.Fprintf(w, "Recovery, 5%% of one island's relays killed at once (islands recover independently: their servers "+
		"share nothing):\n\n| policy | killed | affected | all attached | median | all media back | edges kept | depth after |\n|---|---|---|---|---|---|---|---|\n")
	for i, x := range append(slices.Clone(is.IslandRecovery), is.UpperRecovery) {
		name := x.Policy
		if i == len(is.IslandRecovery) {
			name = "upper tree, " + x.Policy
		}
		fmt.Fprintf(w, "| %s | %d | %d | %.0f ms | %.0f ms | %.0f ms | %.1f%% | %.2f / %d |\n", name, x.Killed, x.Affected,
			x.AllAttachedMs, x.P50AttachedMs, x.AllMediaMs, 100*x.EdgesKept, x.AvgDepthAfter, x.MaxDepthAfter)
	}
	fmt.Fprintf(w, "\nThe last row kills 5%% of the roots in the upper tree (repair): the roots below them are "+
		"attached again in that time; an island whose own root died is without the stream until its regional "+
		"server's origin is replaced, which this model does not cover.\n")
}

// capNote is the largest origin capacity's stretch, for the text.
func capNote(cs []sim.OriginCap) string {
	if len(cs) == 0 {
		return ""
	}
	c := cs[len(cs)-1]
	return fmt.Sprintf(" (%.2f with %d origin slots)", c.AvgStretch, c.Capacity)
}
