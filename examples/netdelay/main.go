// Command netdelay adds a fixed delay to every IP packet between two TUN
// devices, in user space: what examples/lab.sh uses between its sites when
// the kernel has no tc netem. Packets read from --a are written to --b after
// --delay, and those read from --b to --a; the lab's router routes site A to
// site B traffic into --a and site B to site A traffic into --b, and the
// packets written out come back into the kernel, which forwards them on.
// Its cost: each packet is copied twice through user space (read, write).
//
//	netdelay --a dly-a --b dly-b --delay 40ms
//
// It prints one JSON ready line on stdout once both devices are open, and
// on exit (SIGINT, SIGTERM) one line with the packets written and dropped
// per direction.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// maxPacket is the largest IP packet a TUN read returns (its MTU is lower).
const maxPacket = 65535

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "netdelay:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("netdelay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	a := fs.String("a", "dly-a", "first TUN device (created; packets read from it go out of --b)")
	b := fs.String("b", "dly-b", "second TUN device (created; packets read from it go out of --a)")
	delay := fs.Duration("delay", 40*time.Millisecond, "delay added to every packet, each direction")
	maxQueue := fs.Int("max-queue", 4096, "packets waiting per direction; more are dropped and counted")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *delay < 0 || *maxQueue < 1 {
		return fmt.Errorf("--delay %v must be >= 0 and --max-queue %d >= 1", *delay, *maxQueue)
	}
	ta, err := openTUN(*a)
	if err != nil {
		return err
	}
	defer ta.Close()
	tb, err := openTUN(*b)
	if err != nil {
		return err
	}
	defer tb.Close()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ab, ba := newLine(*delay, *maxQueue), newLine(*delay, *maxQueue)
	var wg sync.WaitGroup
	forward := func(from, to *os.File, l *line) {
		wg.Add(2)
		go func() {
			defer wg.Done()
			buf := make([]byte, maxPacket)
			for {
				n, err := from.Read(buf)
				if err != nil {
					if !errors.Is(err, os.ErrClosed) {
						fmt.Fprintf(stderr, "netdelay: read %s: %v\n", from.Name(), err)
					}
					stop()
					return
				}
				l.push(buf[:n])
			}
		}()
		go func() {
			defer wg.Done()
			l.run(ctx, func(p []byte) error { _, err := to.Write(p); return err })
		}()
	}
	forward(ta, tb, ab)
	forward(tb, ta, ba)
	json.NewEncoder(stdout).Encode(map[string]any{"event": "ready", "a": *a, "b": *b, "delay": delay.String(), "max_queue": *maxQueue})

	<-ctx.Done()
	ta.Close() // ends the reads
	tb.Close()
	wg.Wait()
	abw, abd := ab.counts()
	baw, bad := ba.counts()
	return json.NewEncoder(stdout).Encode(map[string]any{"event": "exit",
		"a_to_b": map[string]uint64{"written": abw, "dropped": abd},
		"b_to_a": map[string]uint64{"written": baw, "dropped": bad}})
}

// openTUN creates (or attaches to) the TUN device name, packets without
// the packet-information header, as a pollable file so Close ends a Read.
func openTUN(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun for %s: %w", name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUN device name %q: %w", name, err)
	}
	ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create TUN device %s: %w", name, err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("TUN device %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}
