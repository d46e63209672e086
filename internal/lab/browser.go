package lab

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/chromedp/chromedp"
)

// Browser starts a headless chromium (the program at path) with a fresh
// profile, driven over the DevTools protocol, and returns a chromedp
// context of its first tab; stop ends it and removes the profile.
func Browser(parent context.Context, path string) (ctx context.Context, stop func(), err error) {
	dir, err := os.MkdirTemp("", "ocm-chromium-")
	if err != nil {
		return nil, nil, err
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1600, 1000),
	}
	actx, acancel := chromedp.NewExecAllocator(parent, opts...)
	bctx, bcancel := chromedp.NewContext(actx)
	stop = func() {
		bcancel()
		acancel()
		_ = os.RemoveAll(dir)
	}
	// The first action starts the browser, bound to the context it runs
	// with: bctx, not a shorter one.
	if err := chromedp.Do(bctx); err != nil {
		stop()
		return nil, nil, fmt.Errorf("start %s: %w", path, err)
	}
	return bctx, stop, nil
}

// PageWait polls js (an expression) in the page of ctx every 20 ms until
// it is true, for at most limit.
func PageWait(ctx context.Context, js string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err == nil && ok {
			return nil
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("%s not true within %v", js, limit)
			}
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}
