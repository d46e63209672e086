//go:build !linux

package lab

import "syscall"

func DieWithParent() *syscall.SysProcAttr { return nil }
