//go:build !linux

package systest

import "syscall"

// dieWithTest is Linux only; elsewhere t.Cleanup is the only guard.
func dieWithTest() *syscall.SysProcAttr { return nil }
