// Package cli builds the cobra commands of the six tools; each cmd/X/main.go
// only calls Main with one of them.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"syscall"

	"github.com/spf13/cobra"
)

// Main runs cmd with a context cancelled on SIGINT or SIGTERM and returns
// the process exit code.
//
// OCM_CPUPROFILE=FILE writes a CPU profile of the whole run to FILE, for
// looking at where a relay spends its time (go tool pprof FILE).
// OCM_MEMPROFILE=FILE writes a heap profile when the tool is told to stop
// (as of the last garbage collection, so before the shutdown frees
// anything) to FILE, and the same with the runtime's memory statistics
// (stacks, heap) and the goroutine count as text to FILE.txt: where the
// bytes per connection of a loaded server go.
//
// Every tool gets --version (see Version), and its errors are printed here
// once, never also by cobra.
func Main(cmd *cobra.Command) int {
	cmd.Version = Version()
	cmd.SetVersionTemplate(cmd.Name() + " {{.Version}}\n")
	cmd.SilenceErrors = true
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if path := os.Getenv("OCM_CPUPROFILE"); path != "" {
		if f, err := os.Create(path); err == nil && pprof.StartCPUProfile(f) == nil {
			defer f.Close()
			defer pprof.StopCPUProfile()
		}
	}
	if path := os.Getenv("OCM_MEMPROFILE"); path != "" {
		runtime.MemProfileRate = 512 // every small per-connection allocation shows
		written := make(chan struct{})
		go func() { defer close(written); <-ctx.Done(); writeMemProfile(path) }()
		defer func() { stop(); <-written }()
	}
	if err := cmd.ExecuteContext(ctx); err != nil {
		if !errors.Is(err, ErrSilent) {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %v\n", cmd.Name(), err)
		}
		return 1
	}
	return 0
}

// writeMemProfile writes the heap profile to path and its text form, with
// the runtime's memory statistics and the goroutine count, to path.txt.
func writeMemProfile(path string) {
	n := runtime.NumGoroutine()
	if f, err := os.Create(path); err == nil {
		_ = pprof.Lookup("heap").WriteTo(f, 0)
		f.Close()
	}
	if f, err := os.Create(path + ".txt"); err == nil {
		fmt.Fprintf(f, "# goroutines %d\n", n)
		_ = pprof.Lookup("heap").WriteTo(f, 1)
		f.Close()
	}
}

// ErrSilent is returned by commands that already reported their error.
var ErrSilent = errors.New("error already reported")

// NewLogger returns the slog logger every tool uses: text on stderr.
func NewLogger(w io.Writer, debug bool) *slog.Logger {
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}
