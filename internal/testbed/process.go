package testbed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// errAddrInUse marks a server start that failed because its port was taken.
var errAddrInUse = errors.New("address already in use")

// proc is a server child process. Its exit is observed by one goroutine that
// closes done; it is signalled by PID only.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error // result of Wait, valid once done is closed
}

// startProc starts path with args, appending its stdout and stderr to logPath.
// The process does not depend on any context: it runs until stopped.
func startProc(path string, args []string, logPath string) (*proc, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening log: %w", err)
	}
	defer logFile.Close() // the child holds its own descriptor

	cmd := exec.Command(path, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", filepath.Base(path), err)
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM, waits up to grace for the exit, then sends SIGKILL.
func (p *proc) stop(grace time.Duration) error {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signalling pid %d: %w", p.cmd.Process.Pid, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
		return p.kill()
	}
}

// kill sends SIGKILL and waits for the exit.
func (p *proc) kill() error {
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing pid %d: %w", p.cmd.Process.Pid, err)
	}
	<-p.done
	return nil
}

// waitReady calls probe until it succeeds, the process exits, ctx ends or
// timeout passes.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration, probe func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := probe(ctx)
		if err == nil && !p.exited() { // not another server that took the port
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("exited before ready: %v", p.err)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s: %w (last probe: %v)", timeout, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// findBinary returns the first of names found in PATH or, in that order, in dirs.
func findBinary(names []string, dirs ...string) (string, error) {
	for _, name := range names {
		if path, err := exec.LookPath(name); err == nil {
			return path, nil
		}
	}
	for _, dir := range dirs {
		for _, name := range names {
			path := filepath.Join(dir, name)
			if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
				return path, nil
			}
		}
	}
	return "", fmt.Errorf("%s: %w", strings.Join(names, " or "), ErrNotInstalled)
}

// logSize returns the size of the file at path, 0 if it does not exist.
func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// logTail returns at most the last 4 KiB written to path after offset.
func logTail(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	const limit = 4 << 10
	if size := logSize(path); size-offset > limit {
		offset = size - limit
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return strings.TrimSpace(string(b))
}

// startErr builds the error of a failed server start from the server's log.
func startErr(what string, err error, log string) error {
	if strings.Contains(strings.ToLower(log), "address already in use") {
		err = fmt.Errorf("%w: %w", errAddrInUse, err)
	}
	if log == "" {
		return fmt.Errorf("starting %s: %w", what, err)
	}
	return fmt.Errorf("starting %s: %w\n%s", what, err, log)
}

// pingHTTP succeeds once a server answers an HTTP GET of endpoint+"/",
// whatever the status.
func pingHTTP(ctx context.Context, endpoint string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

// PeakRSS is a running process's peak resident set in KiB: VmHWM in
// /proc/<pid>/status (Linux), the high-water mark of its own memory.
// getrusage's ru_maxrss is not that: on Linux a child's starts at the
// resident set its parent had when it was spawned.
func PeakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}
