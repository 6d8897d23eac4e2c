package testbed

import "syscall"

// sysProcAttr puts a server in its own process group, so a terminal's Ctrl-C
// reaches only the parent, which stops it in order, and has the kernel kill it
// when the parent dies. Pdeathsig follows the OS thread that started the
// child; Go only retires threads whose goroutine exits while locked to them,
// which this package never does.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
