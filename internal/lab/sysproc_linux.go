//go:build linux

package lab

import "syscall"

// DieWithParent has the kernel kill a child when its parent dies: a test
// binary's -timeout panic or a kill of go test or bench skips cleanup.
func DieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
