package peers

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Process is a peer program started by this package. Stop signals only its own pid, never a process
// group or a name, so concurrent tests and other users of the machine are left alone.
type Process struct {
	name string
	cmd  *exec.Cmd
	Log  *Log

	done     chan struct{}
	exitErr  error
	stopOnce sync.Once
	stopErr  error
	// stopGrace is how long Stop waits after SIGTERM before SIGKILL.
	stopGrace time.Duration
}

// StartProcess runs cmd with its output in dir/<name>.log and stops it when the test ends.
// cmd.SysProcAttr gets Pdeathsig so a crashed test binary does not leave peers behind.
func StartProcess(tb testing.TB, name, dir string, cmd *exec.Cmd) *Process {
	tb.Helper()
	p, err := startProcess(name, dir, cmd)
	if err != nil {
		tb.Fatalf("peers: %v", err)
	}
	tb.Cleanup(func() {
		if err := p.Stop(); err != nil {
			tb.Logf("peers: stopping %s: %v", name, err)
		}
	})
	return p
}

func startProcess(name, dir string, cmd *exec.Cmd) (*Process, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	log := newLog(f, logPath)
	cmd.Stdout, cmd.Stderr = log, log
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = syscall.SIGTERM
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("starting %s (%s): %w", name, cmd.Path, err)
	}
	p := &Process{name: name, cmd: cmd, Log: log, done: make(chan struct{}), stopGrace: 10 * time.Second}
	go func() {
		p.exitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id of the peer.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitErr is the result of waiting for the process; only meaningful after Done is closed.
func (p *Process) ExitErr() error {
	select {
	case <-p.done:
		return p.exitErr
	default:
		return nil
	}
}

// Stop sends SIGTERM, waits, then SIGKILLs. It is idempotent; an exit caused by our signal is not an
// error.
func (p *Process) Stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return // exited on its own; nothing to signal (the pid may be reused)
		default:
		}
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
			p.stopErr = fmt.Errorf("SIGTERM %s (pid %d): %w", p.name, p.Pid(), err)
		}
		select {
		case <-p.done:
		case <-time.After(p.stopGrace):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.stopErr = fmt.Errorf("%s (pid %d) ignored SIGTERM for %v; killed", p.name, p.Pid(), p.stopGrace)
		}
	})
	return p.stopErr
}

// Kill sends SIGKILL to the process (its pid only) and waits until it has exited: a crash, with
// no chance to clean up. Later Stops are no-ops.
func (p *Process) Kill() error {
	var err error
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		if kerr := p.cmd.Process.Kill(); kerr != nil && !errors.Is(kerr, os.ErrProcessDone) {
			err = fmt.Errorf("SIGKILL %s (pid %d): %w", p.name, p.Pid(), kerr)
			return
		}
		<-p.done
	})
	return err
}

// socketDir makes a short-named temporary directory, removed when the test ends, for daemons
// that create unix sockets in it: socket paths are limited to 108 bytes and t.TempDir paths,
// which embed the test name, can exceed that.
func socketDir(tb testing.TB, prefix string) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", prefix)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			tb.Logf("peers: removing %s: %v", dir, err)
		}
	})
	return dir
}
