// Package lab runs the built tools as separate processes for the system
// tests and the benchmarks: it builds or finds the binaries, starts a tool
// and waits for its ready line, reads its event lines, builds an overlay of
// hosts and plays streams with a lean in-process reader. It is the one
// vocabulary systest and bench share (like MediaMTX's internal/test).
package lab

import (
	"slices"
	"sync"
	"time"
)

// Patience bounds every wait of this package: a liveness limit for a
// shared, noisy machine, never a performance figure.
const Patience = 20 * time.Second

// Cleaner registers a function to run when its owner is done: a test
// (*testing.T satisfies it) or a program's Cleanups.
type Cleaner interface {
	Cleanup(func())
}

// TB is the part of testing.TB that the test helpers (WaitEvent, ...) use.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
}

// reporter is what a Cleaner that is a test also has: the processes it
// started show their output when it failed.
type reporter interface {
	Name() string
	Failed() bool
	Logf(format string, args ...any)
}

// Cleanups is a Cleaner for a program (bench's main): Run calls the
// registered functions, the last registered first, as testing does.
type Cleanups struct {
	mu  sync.Mutex
	fns []func()
}

// Cleanup registers f.
func (c *Cleanups) Cleanup(f func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fns = append(c.fns, f)
}

// Run calls every registered function once, the last registered first.
func (c *Cleanups) Run() {
	c.mu.Lock()
	fns := c.fns
	c.fns = nil
	c.mu.Unlock()
	for _, f := range slices.Backward(fns) {
		f()
	}
}
