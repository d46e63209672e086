//go:build linux

package systest

import "syscall"

// dieWithTest has the kernel kill a child when the test binary dies: a
// -timeout panic or a kill of go test skips t.Cleanup.
func dieWithTest() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
