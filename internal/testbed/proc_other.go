//go:build !linux

package testbed

import "syscall"

// sysProcAttr returns nil: outside Linux a child cannot be tied to its
// parent's life, so leaked servers are stopped by Stop only.
func sysProcAttr() *syscall.SysProcAttr { return nil }
