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
// OCM_MEMPROFILE=FILE writes, each time the process gets SIGUSR1, a heap
// profile to FILE, and the same with the runtime's memory statistics
// (stacks, heap) and the goroutine count as text to FILE.txt: where the
// bytes per connection of a loaded server go (bench/scale --memprofile
// signals at the end of its steady phase).
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
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		ended := make(chan struct{})
		go func() {
			defer close(ended)
			for {
				select {
				case <-usr1:
					writeMemProfile(path)
				case <-ctx.Done():
					return
				}
			}
		}()
		defer func() { signal.Stop(usr1); stop(); <-ended }()
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
	// The text form appears whole (renamed into place): a reader waits for it.
	if f, err := os.Create(path + ".txt.tmp"); err == nil {
		fmt.Fprintf(f, "# goroutines %d\n", n)
		_ = pprof.Lookup("heap").WriteTo(f, 1)
		if f.Close() == nil {
			_ = os.Rename(path+".txt.tmp", path+".txt")
		}
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
