package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bluenviron/gortsplib/v4"
	"github.com/bluenviron/gortsplib/v4/pkg/description"
	"github.com/bluenviron/gortsplib/v4/pkg/format"
	"github.com/bluenviron/gortsplib/v4/pkg/liberrors"
	"github.com/ocm-overlay/ocm/internal/lab"
	"github.com/pion/rtp"
)

// The mediator case: an origin rtsp-mediator fed by a publisher in this
// process, a relay rtsp-mediator pulling from it with the enhanced URL, and
// N readers on the relay. It measures the relay's CPU against a floor
// process that writes the same bytes to N sockets, the loss and added
// latency seen by the readers, and the time to a first packet.
func init() { register("mediator", runMediator) }

// Parameters of the case and its targets (from DESIGN.md and the brief).
var (
	mediatorReaderCounts = []int{50, 200}

	mediatorPath     = "live"
	mediatorWarmup   = 2 * time.Second        // after every reader has packets
	mediatorDrain    = 500 * time.Millisecond // for the window's last packets
	mediatorFPRepeat = 5                      // first-packet measurements
	mediatorDialPar  = 16                     // readers connecting at once

	targetP99        = 2 * time.Millisecond // at 50 readers
	targetColdFirst  = 100 * time.Millisecond
	targetFloorRatio = 2.0
)

func runMediator(ctx context.Context, o options) ([]result, error) {
	origin, err := lab.StartMediator(o.Lab, o.Tools, "origin", nil, "--publish", "--stats-interval", "1s", "--keyframe-wait", "0")
	if err != nil {
		return nil, fmt.Errorf("origin: %w", err)
	}
	defer origin.Stop()
	originAddr := origin.Addr

	pub, err := startPublisher(ctx, fmt.Sprintf("rtsp://%s/%s", originAddr, mediatorPath))
	if err != nil {
		return nil, fmt.Errorf("publisher: %w", err)
	}
	defer pub.Close()

	m := &mediatorBench{o: o, origin: origin, originAddr: originAddr, pub: pub}
	var results []result

	fp, err := m.firstPacket(ctx)
	if err != nil {
		return nil, fmt.Errorf("first packet: %w", err)
	}
	results = append(results, fp)

	for _, n := range mediatorReaderCounts {
		r, err := m.fanout(ctx, n)
		if err != nil {
			return results, fmt.Errorf("%d readers: %w", n, err)
		}
		results = append(results, r)
	}
	if err := pub.Err(); err != nil {
		return results, fmt.Errorf("publisher: %w", err)
	}
	return results, nil
}

type mediatorBench struct {
	o          options
	origin     *lab.Mediator
	originAddr string
	pub        *publisher
}

func (m *mediatorBench) startRelay() (*lab.Mediator, string, error) {
	p, err := lab.StartMediator(m.o.Lab, m.o.Tools, "relay", nil,
		"--resolver", "direct", "--allow-origin", "any", "--stats-interval", "1s", "--keyframe-wait", "0")
	if err != nil {
		return nil, "", fmt.Errorf("relay: %w", err)
	}
	return p, lab.Enhanced(p.Addr, mediatorPath, m.originAddr), nil
}

func (m *mediatorBench) directURL() string {
	return fmt.Sprintf("rtsp://%s/%s", m.originAddr, mediatorPath)
}

// firstPacket measures, on fresh relays, the time from a reader's DESCRIBE
// to its first RTP packet: cold (the relay has no upstream yet, so it
// includes the relay's own DESCRIBE/SETUP/PLAY upstream) and warm (a
// second reader while the first is playing). The origin, whose stream is
// always live, is the reference: it includes the wait for the next frame
// (up to 40 ms), which no relay without a frame cache can avoid.
func (m *mediatorBench) firstPacket(ctx context.Context) (result, error) {
	var cold, warm, direct []time.Duration
	for range mediatorFPRepeat {
		relay, url, err := m.startRelay()
		if err != nil {
			return result{}, err
		}
		c, err := timeFirstPacket(ctx, url)
		if err != nil {
			relay.Stop()
			return result{}, fmt.Errorf("cold: %w", err)
		}
		cold = append(cold, c.elapsed)
		w, err := timeFirstPacket(ctx, url)
		if err == nil {
			warm = append(warm, w.elapsed)
			w.client.Close()
		}
		c.client.Close()
		relay.Stop()
		if err != nil {
			return result{}, fmt.Errorf("warm: %w", err)
		}

		d, err := timeFirstPacket(ctx, m.directURL())
		if err != nil {
			return result{}, fmt.Errorf("origin: %w", err)
		}
		d.client.Close()
		direct = append(direct, d.elapsed)
	}

	coldMed := median(cold)
	r := result{
		Case: "mediator/first-packet",
		Metrics: map[string]any{
			"first_packet_cold_ms":     ms(coldMed),
			"first_packet_warm_ms":     ms(median(warm)),
			"first_packet_origin_ms":   ms(median(direct)),
			"first_packet_cold_max_ms": ms(slices.Max(cold)),
			"repeats":                  mediatorFPRepeat,
		},
	}
	r.Notes = append(r.Notes, verdict(coldMed < targetColdFirst,
		fmt.Sprintf("cold first packet %.1f ms (median of %d), target < %v", ms(coldMed), len(cold), targetColdFirst)))
	return r, nil
}

type firstPacketRun struct {
	client  *lab.Reader
	elapsed time.Duration
}

// timeFirstPacket opens a reader on url and returns it once its first RTP
// packet has arrived, with the time since it started its DESCRIBE.
func timeFirstPacket(ctx context.Context, url string) (firstPacketRun, error) {
	first := make(chan time.Time, 1)
	var once sync.Once
	start := time.Now()
	c, err := lab.Dial(url, lab.ReaderOptions{ReadTimeout: 5 * time.Second, OnPacket: func(_ *rtp.Packet) {
		once.Do(func() { first <- time.Now() })
	}})
	if err != nil {
		return firstPacketRun{}, err
	}
	select {
	case t := <-first:
		return firstPacketRun{client: c, elapsed: t.Sub(start)}, nil
	case <-time.After(5 * time.Second):
		c.Close()
		return firstPacketRun{}, errors.New("no packet within 5 s of PLAY")
	case <-ctx.Done():
		c.Close()
		return firstPacketRun{}, ctx.Err()
	}
}

// fanout runs n readers on a fresh relay and two on the origin,
// measures over o.Duration after a warm-up, then the two floors for n.
func (m *mediatorBench) fanout(ctx context.Context, n int) (result, error) {
	relay, url, err := m.startRelay()
	if err != nil {
		return result{}, err
	}
	defer relay.Stop()

	// Arrival slots cover warm-up, window and drain with slack; the window
	// starts only once every reader is playing (rec.setBase).
	pps := float64(len(synthPayloads(false)) * synthFrameRate)
	slots := int(pps * (mediatorWarmup + m.o.Duration + mediatorDrain + 3*time.Second).Seconds())
	epoch := time.Now()

	// direct is the reference for latency. twin, a second reader on the
	// origin, takes the same path as direct, so its delay behind direct is
	// what the measurement itself adds (this process's scheduling of its
	// n+2 readers on a few cores), to be read next to the relay's figure.
	direct := newRecorder(m.pub, epoch, slots)
	twin := newRecorder(m.pub, epoch, slots)
	var dcs []*lab.Reader
	defer func() { closeAll(dcs) }()
	for _, rec := range []*recorder{direct, twin} {
		c, err := lab.Dial(m.directURL(), lab.ReaderOptions{OnPacket: rec.onPacket})
		if err != nil {
			return result{}, fmt.Errorf("direct reader: %w", err)
		}
		dcs = append(dcs, c)
	}

	connectStart := time.Now()
	recs, clients, err := openReaders(ctx, url, n, m.pub, epoch, slots)
	defer func() { closeAll(clients) }()
	if err != nil {
		return result{}, err
	}
	connectTime := time.Since(connectStart)
	if err := waitAllPlaying(ctx, recs, 10*time.Second); err != nil {
		return result{}, err
	}

	base := m.pub.Sent()
	direct.setBase(base)
	twin.setBase(base)
	for _, r := range recs {
		r.setBase(base)
	}
	if err := sleepCtx(ctx, mediatorWarmup); err != nil {
		return result{}, err
	}

	relayCPU, err := lab.StartCPUMeter(relay.PID())
	if err != nil {
		return result{}, err
	}
	originCPU, err := lab.StartCPUMeter(m.origin.PID())
	if err != nil {
		return result{}, err
	}
	selfCPU, err := lab.StartCPUMeter(0)
	if err != nil {
		return result{}, err
	}
	winStart := m.pub.Sent()
	if err := sleepCtx(ctx, m.o.Duration); err != nil {
		return result{}, err
	}
	winEnd := m.pub.Sent()
	relayPerWall, err1 := relayCPU.PerWall()
	originPerWall, err2 := originCPU.PerWall()
	selfPerWall, err3 := selfCPU.PerWall()
	if err := errors.Join(err1, err2, err3); err != nil {
		return result{}, err
	}
	if err := sleepCtx(ctx, mediatorDrain); err != nil {
		return result{}, err
	}
	if relay.Exited() {
		return result{}, fmt.Errorf("relay exited during the run:\n%s", relay.StderrTail())
	}
	if err := m.pub.Err(); err != nil {
		return result{}, fmt.Errorf("publisher stopped during the run: %w", err)
	}
	load1 := lab.LoadAverage()
	closeAll(clients)
	clients = nil
	closeAll(dcs)
	dcs = nil
	relay.Stop()

	st := analyse(direct, recs, winStart-base, winEnd-base)
	noise := analyse(direct, []*recorder{twin}, winStart-base, winEnd-base)

	r := result{
		Case: fmt.Sprintf("mediator/readers=%d", n),
		Metrics: map[string]any{
			"readers":                     n,
			"window_s":                    round3(m.o.Duration.Seconds()),
			"connect_all_s":               round3(connectTime.Seconds()),
			"cpu_per_wall_s":              round3(relayPerWall),
			"origin_cpu_per_wall_s":       round3(originPerWall),
			"bench_cpu_per_wall_s":        round3(selfPerWall),
			"host_cpus":                   runtime.NumCPU(),
			"host_load1":                  load1,
			"packets_per_reader":          winEnd - winStart,
			"lost_packets":                st.lost,
			"lost_packets_max_per_reader": st.maxLostPerReader,
			"readers_with_loss":           st.readersWithLoss,
			"direct_lost_packets":         st.directLost,
			"duplicate_packets":           st.dups,
			"latency_p50_ms":              ms(st.p50),
			"latency_p99_ms":              ms(st.p99),
			"latency_max_ms":              ms(st.max),
			"latency_samples":             st.samples,
			"direct_twin_latency_p50_ms":  ms(noise.p50),
			"direct_twin_latency_p99_ms":  ms(noise.p99),
			"publisher_queue_drops":       m.pub.drops.Load(),
		},
	}

	// The floors run after the relay is gone, so they do not share the CPU.
	floors := map[string]float64{}
	for _, mode := range []string{"writev", "packet"} {
		v, note, err := measureFloor(ctx, m.o.Lab, mode, n, mediatorWarmup, m.o.Duration)
		if err != nil {
			return result{}, fmt.Errorf("floor %s: %w", mode, err)
		}
		floors[mode] = v
		if note != "" {
			r.Notes = append(r.Notes, note)
		}
	}
	r.Metrics["floor_cpu_per_wall_s"] = round3(floors["writev"])
	r.Metrics["floor_per_packet_cpu_per_wall_s"] = round3(floors["packet"])
	ratio := math.NaN()
	if floors["writev"] > 0 {
		ratio = relayPerWall / floors["writev"]
		r.Metrics["cpu_ratio_vs_floor"] = round3(ratio)
	}
	if floors["packet"] > 0 {
		r.Metrics["cpu_ratio_vs_per_packet_floor"] = round3(relayPerWall / floors["packet"])
	}

	total := (winEnd - winStart) * int64(n)
	r.Notes = append(r.Notes, verdict(st.lost == 0,
		fmt.Sprintf("lost %d of %d packets (%d of %d readers lost any), target zero loss",
			st.lost, total, st.readersWithLoss, n)))
	if n == 50 {
		r.Notes = append(r.Notes, verdict(st.samples > 0 && st.p99 < targetP99,
			fmt.Sprintf("added latency p99 %.3f ms, target < %v at 50 readers (a second direct reader measures %.3f ms p99 behind the first: the measurement's own noise)",
				ms(st.p99), targetP99, ms(noise.p99))))
	}
	if math.IsNaN(ratio) {
		r.Notes = append(r.Notes, "FAIL: the floor used no measurable CPU; no ratio")
	} else {
		r.Notes = append(r.Notes, verdict(ratio <= targetFloorRatio,
			fmt.Sprintf("relay CPU %.3f s/s is %.2fx the writev floor's %.3f s/s (per-packet floor %.3f s/s), target within %.0fx",
				relayPerWall, ratio, floors["writev"], floors["packet"], targetFloorRatio)))
	}
	if busy := relayPerWall + originPerWall + selfPerWall; busy > 0.8*float64(runtime.NumCPU()) {
		r.Notes = append(r.Notes, fmt.Sprintf(
			"caution: relay, origin and bench together used %.2f of %d CPUs; latency and loss may reflect contention",
			busy, runtime.NumCPU()))
	}
	if st.directLost > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf(
			"the direct reader on the origin lost %d packets; latency has fewer samples", st.directLost))
	}
	return r, nil
}

// measureFloor runs the floor in mode with n readers and returns its CPU
// seconds per wall second over dur after warmup, and a note if its readers
// did not receive the full rate.
func measureFloor(ctx context.Context, c lab.Cleaner, mode string, n int, warmup, dur time.Duration) (float64, string, error) {
	f, err := startFloor(ctx, c, mode, n)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	if err := sleepCtx(ctx, warmup); err != nil {
		return 0, "", err
	}
	meter, err := lab.StartCPUMeter(f.proc.PID())
	if err != nil {
		return 0, "", err
	}
	got0 := f.received.Load()
	if err := sleepCtx(ctx, dur); err != nil {
		return 0, "", err
	}
	v, err := meter.PerWall()
	if err != nil {
		return 0, "", err
	}
	if f.proc.Exited() {
		return 0, "", fmt.Errorf("floor exited:\n%s", f.proc.StderrTail())
	}
	got := float64(f.received.Load() - got0)
	want := float64(n*floorBytesPerFrame()*synthFrameRate) * dur.Seconds()
	note := ""
	if got < 0.95*want {
		note = fmt.Sprintf("floor %s delivered only %.0f%% of the stream to its readers", mode, 100*got/want)
	}
	return v, note, nil
}

// openReaders plays url with n readers, mediatorDialPar at a time. The
// clients are returned even on error, for the caller to close.
func openReaders(ctx context.Context, url string, n int, pub *publisher, epoch time.Time, slots int) ([]*recorder, []*lab.Reader, error) {
	recs := make([]*recorder, n)
	clients := make([]*lab.Reader, n)
	errs := make([]error, n)
	sem := make(chan struct{}, mediatorDialPar)
	var wg sync.WaitGroup
	for i := range n {
		recs[i] = newRecorder(pub, epoch, slots)
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			clients[i], errs[i] = lab.Dial(url, lab.ReaderOptions{OnPacket: recs[i].onPacket})
		}()
	}
	wg.Wait()
	opened := clients[:0:0]
	for _, c := range clients {
		if c != nil {
			opened = append(opened, c)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return recs, opened, fmt.Errorf("%d of %d readers failed: %w", n-len(opened), n, firstErr(errs))
	}
	return recs, opened, nil
}

func firstErr(errs []error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func closeAll[C interface{ Close() }](clients []C) {
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() { defer wg.Done(); c.Close() }()
	}
	wg.Wait()
}

func waitAllPlaying(ctx context.Context, recs []*recorder, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		waiting := 0
		for _, r := range recs {
			if r.received.Load() == 0 {
				waiting++
			}
		}
		if waiting == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d readers got no packet within %v of PLAY", waiting, len(recs), limit)
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// recorder keeps one reader's arrival time per packet, indexed by the
// packet's position in the publisher's stream (sequence numbers unwrapped
// against the publisher's count, so the direct and relayed copies of a
// packet share an index).
type recorder struct {
	epoch    time.Time
	arrivals []int64 // ns since epoch, +1 so 0 means "not received"
	base     atomic.Int64
	received atomic.Int64

	// Only the client's reading goroutine touches these until it is closed.
	ref         int64
	dups        int
	outOfWindow int
}

func newRecorder(pub *publisher, epoch time.Time, slots int) *recorder {
	r := &recorder{epoch: epoch, arrivals: make([]int64, slots), ref: pub.Sent()}
	r.base.Store(-1)
	return r
}

// setBase starts recording: the packet with index base goes to slot 0.
func (r *recorder) setBase(base int64) { r.base.Store(base) }

func (r *recorder) onPacket(pkt *rtp.Packet) {
	now := int64(time.Since(r.epoch)) + 1
	ext := r.ref + int64(int16(pkt.SequenceNumber-uint16(r.ref)))
	r.ref = ext
	r.received.Add(1)
	base := r.base.Load()
	if base < 0 {
		return
	}
	i := ext - base
	if i < 0 || i >= int64(len(r.arrivals)) {
		r.outOfWindow++
		return
	}
	if r.arrivals[i] != 0 {
		r.dups++
		return
	}
	r.arrivals[i] = now
}

type fanoutStats struct {
	lost, maxLostPerReader, directLost int64
	readersWithLoss, dups, samples     int
	p50, p99, max                      time.Duration
}

// analyse counts, for slots [from, to), the packets each reader missed and
// the delay of every relayed packet behind its direct copy. The readers
// must be closed.
func analyse(direct *recorder, recs []*recorder, from, to int64) fanoutStats {
	var st fanoutStats
	for i := from; i < to; i++ {
		if direct.arrivals[i] == 0 {
			st.directLost++
		}
	}
	lat := make([]int64, 0, int64(len(recs))*(to-from))
	for _, r := range recs {
		var lost int64
		for i := from; i < to; i++ {
			a := r.arrivals[i]
			if a == 0 {
				lost++
				continue
			}
			if d := direct.arrivals[i]; d != 0 {
				lat = append(lat, a-d)
			}
		}
		st.lost += lost
		st.maxLostPerReader = max(st.maxLostPerReader, lost)
		if lost > 0 {
			st.readersWithLoss++
		}
		st.dups += r.dups
	}
	st.samples = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		st.p50 = time.Duration(percentile(lat, 0.50))
		st.p99 = time.Duration(percentile(lat, 0.99))
		st.max = time.Duration(lat[len(lat)-1])
	}
	return st
}

// percentile returns the nearest-rank percentile of sorted values.
func percentile(sorted []int64, p float64) int64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// publisher records the synthetic stream into the origin over TCP in real
// time; packet k of the stream carries sequence number uint16(k).
type publisher struct {
	client *gortsplib.Client
	media  *description.Media
	cancel context.CancelFunc
	done   chan struct{}
	sent   atomic.Int64
	drops  atomic.Int64 // packets the client's write queue refused
	err    error
}

func startPublisher(ctx context.Context, url string) (*publisher, error) {
	media := &description.Media{
		Type:    description.MediaTypeVideo,
		Formats: []format.Format{&format.H264{PayloadTyp: synthPayloadTyp, PacketizationMode: 1}},
	}
	tcp := gortsplib.TransportTCP
	c := &gortsplib.Client{Transport: &tcp, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second}
	if err := c.StartRecording(url, &description.Session{Medias: []*description.Media{media}}); err != nil {
		return nil, fmt.Errorf("record %s: %w", url, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &publisher{client: c, media: media, cancel: cancel, done: make(chan struct{})}
	go p.run(ctx)
	return p, nil
}

func (p *publisher) run(ctx context.Context) {
	defer close(p.done)
	frames := [2][][]byte{synthPayloads(true), synthPayloads(false)}
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: synthPayloadTyp}}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	start := time.Now()
	for n := 0; ; n++ {
		if wait := time.Until(start.Add(time.Duration(n) * synthFrameInterval)); wait > 0 {
			timer.Reset(wait)
			select {
			case <-ctx.Done():
				return
			case <-timer.C:
			}
		} else if ctx.Err() != nil {
			return
		}
		payloads := frames[1]
		if n%synthFrameRate == 0 {
			payloads = frames[0]
		}
		for i, pl := range payloads {
			k := p.sent.Load()
			pkt.SequenceNumber = uint16(k)
			pkt.Timestamp = uint32(int64(n) * synthClockRate / synthFrameRate)
			pkt.Marker = i == len(payloads)-1
			pkt.Payload = pl
			err := p.client.WritePacketRTP(p.media, pkt)
			var full liberrors.ErrClientWriteQueueFull
			switch {
			case errors.As(err, &full):
				p.drops.Add(1)
			case err != nil:
				p.err = err
				return
			}
			p.sent.Add(1)
		}
	}
}

// Sent returns how many packets the publisher has written (the index of the
// next one).
func (p *publisher) Sent() int64 { return p.sent.Load() }

// Err returns why the publisher stopped writing, or nil while it runs.
func (p *publisher) Err() error {
	select {
	case <-p.done:
		return p.err
	default:
		return nil
	}
}

func (p *publisher) Close() {
	p.cancel()
	<-p.done
	p.client.Close()
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// putMedian puts v's median, in milliseconds, into m under key; nothing
// when v is empty.
func putMedian(m map[string]any, key string, v []time.Duration) {
	if len(v) > 0 {
		m[key] = ms(median(v))
	}
}

// putMs puts v's median and maximum, in milliseconds, into m under the two keys.
// A metric with no sample is left out.
func putMs(m map[string]any, medianKey, maxKey string, v []time.Duration) {
	if len(v) == 0 {
		return
	}
	m[medianKey] = ms(median(v))
	m[maxKey] = ms(slices.Max(v))
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(v float64) float64 { return math.Round(v*1000) / 1000 }

func verdict(ok bool, s string) string {
	if ok {
		return "met: " + s
	}
	return "NOT MET: " + s
}
