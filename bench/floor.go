package main

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocm-overlay/ocm/internal/event"
	"github.com/ocm-overlay/ocm/internal/lab"
)

// The synthetic stream shared by the mediator case's publisher and the
// floor: about 4 Mbit/s of "video", 25 frames a second of 20 KB, each cut
// into FU-A shaped RTP payloads of at most 1400 bytes.
const (
	synthFrameRate  = 25
	synthFrameBytes = 20000
	synthPayloadMax = 1400
	synthClockRate  = 90000
	synthPayloadTyp = 96
	rtpHeaderLen    = 12
)

var synthFrameInterval = time.Second / synthFrameRate

// synthPayloads returns the RTP payloads of one frame: an H264 NAL unit of
// synthFrameBytes fragmented as FU-A (RFC 6184 5.8), so a relay that peeks
// at payloads sees the shape it expects. idr marks the frame a keyframe.
// Readers here do not decode, so the body is filler.
func synthPayloads(idr bool) [][]byte {
	typ := byte(1)
	if idr {
		typ = 5
	}
	var out [][]byte
	for left := synthFrameBytes; left > 0; {
		n := min(left, synthPayloadMax)
		p := make([]byte, n)
		p[0] = 0x60 | 28 // NRI 3, FU-A
		p[1] = typ
		if len(out) == 0 {
			p[1] |= 0x80 // start
		}
		for i := 2; i < n; i++ {
			p[i] = byte(i*7 + left)
		}
		left -= n
		if left == 0 {
			p[1] |= 0x40 // end
		}
		out = append(out, p)
	}
	return out
}

// The floor is a separate process, the bench binary re-executed with
// floorEnv set (bench/main.go owns the flags, so this stays out of them):
// the least a relay can do to deliver the stream over TCP, with none of the
// RTSP machinery, so the relay's CPU can be judged against it.
const floorEnv = "OCM_BENCH_FLOOR"

func init() {
	if os.Getenv(floorEnv) == "" {
		return
	}
	if err := floorMain(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// floorMain accepts -readers TCP connections, then writes the synthetic
// stream to each as RTSP interleaved frames ('$', channel 0, length, RTP
// packet) in real time: one vectored write (writev) per frame per
// connection, or with -mode packet one write per packet per connection.
// It prints a ready line with its address and stops after -max-duration
// (the bench kills it sooner).
func floorMain(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	mode := fs.String("mode", "writev", "writev: one write per frame per connection; packet: one per packet")
	readers := fs.Int("readers", 1, "connections to accept before streaming")
	maxDur := fs.Duration("max-duration", 2*time.Minute, "exit after this long in any case")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *mode != "writev" && *mode != "packet" {
		return fmt.Errorf("unknown -mode %q", *mode)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *maxDur)
	defer cancel()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer ln.Close()
	event.NewWriter(stdout).Emit(event.FloorReady{Addr: ln.Addr().String()})

	go func() { <-ctx.Done(); ln.Close() }()
	conns := make([]net.Conn, 0, *readers)
	for len(conns) < *readers {
		c, err := ln.Accept()
		if err != nil {
			return fmt.Errorf("accept: %w", err)
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()

	// One frame's interleaved packets, rewritten in place per frame: every
	// connection gets the same bytes, as from a relay's shared stream.
	frames := [2][][]byte{synthPayloads(true), synthPayloads(false)}
	pkts := make([][]byte, len(frames[0]))
	for i, p := range frames[0] {
		pkts[i] = make([]byte, 4+rtpHeaderLen+len(p))
	}
	scratch := make(net.Buffers, 0, len(pkts))
	var seq uint16
	start := time.Now()
	for n := 0; ; n++ {
		if wait := time.Until(start.Add(time.Duration(n) * synthFrameInterval)); wait > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
		}
		payloads := frames[1]
		if n%synthFrameRate == 0 {
			payloads = frames[0]
		}
		ts := uint32(n * synthClockRate / synthFrameRate)
		for i, p := range payloads {
			b := pkts[i]
			b[0], b[1] = '$', 0
			binary.BigEndian.PutUint16(b[2:], uint16(rtpHeaderLen+len(p)))
			putRTPHeader(b[4:], seq, ts, i == len(payloads)-1)
			copy(b[4+rtpHeaderLen:], p)
			seq++
		}
		alive := conns[:0]
		for _, c := range conns {
			var err error
			if *mode == "writev" {
				scratch = append(scratch[:0], pkts...) // WriteTo consumes it
				_, err = scratch.WriteTo(c)
			} else {
				for _, b := range pkts {
					if _, err = c.Write(b); err != nil {
						break
					}
				}
			}
			if err != nil {
				c.Close()
				continue
			}
			alive = append(alive, c)
		}
		conns = alive
		if len(conns) == 0 {
			return errors.New("every reader went away")
		}
	}
}

func putRTPHeader(b []byte, seq uint16, ts uint32, marker bool) {
	b[0] = 0x80 // version 2
	b[1] = synthPayloadTyp
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], 0x0c0ffee0) // SSRC
}

// floorRun is one measurement of the floor: the process, and the bench's
// readers draining it.
type floorRun struct {
	proc     *lab.Proc
	conns    []net.Conn
	received atomic.Int64 // bytes, summed over readers
	wg       sync.WaitGroup
}

// startFloor starts the floor process in mode for n readers and connects
// them; each reader discards what it reads.
func startFloor(ctx context.Context, c lab.Cleaner, mode string, n int) (*floorRun, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	p, err := lab.StartWith(c, lab.Options{Env: []string{floorEnv + "=1"}, StopLimit: 3 * time.Second},
		"floor "+mode, exe, "-mode", mode, "-readers", strconv.Itoa(n))
	if err != nil {
		return nil, err
	}
	f := &floorRun{proc: p}
	ready, err := lab.Ready[event.FloorReady](ctx, p, lab.Patience)
	if err != nil {
		f.Close()
		return nil, err
	}
	addr := ready.Addr
	d := net.Dialer{Timeout: 5 * time.Second}
	for range n {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("floor: dial: %w", err)
		}
		f.conns = append(f.conns, c)
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			buf := make([]byte, 64<<10)
			for {
				k, err := c.Read(buf)
				f.received.Add(int64(k))
				if err != nil {
					return
				}
			}
		}()
	}
	return f, nil
}

// Close stops the floor process and its readers.
func (f *floorRun) Close() {
	_ = f.proc.Stop()
	for _, c := range f.conns {
		c.Close()
	}
	f.wg.Wait()
}

// bytesPerFrame is what the floor sends each reader per frame.
func floorBytesPerFrame() int {
	n := 0
	for _, p := range synthPayloads(false) {
		n += 4 + rtpHeaderLen + len(p)
	}
	return n
}
