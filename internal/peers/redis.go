package peers

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Redis is a redis-server on loopback with its own directory, no persistence and no
// configuration beyond the command line (a system redis.conf never applies).
type Redis struct {
	Addr string // 127.0.0.1:port
	Dir  string
	*Process
}

// StartRedis starts redis-server and waits until it answers PING.
//
// redis-server reads port 0 as "no TCP listener", so it cannot be asked for a kernel-chosen port
// directly: a port is taken from the kernel by listening on 127.0.0.1:0 and closed just before
// redis-server binds it; if another process took it meanwhile, redis-server exits and a new port
// is tried.
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	bin := Binary(tb, "redis-server")
	dir := tb.TempDir()
	var last error
	for attempt := range 5 {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("peers: redis: %v", err)
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		cmd := exec.Command(bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port),
			"--dir", dir, "--save", "", "--appendonly", "no", "--protected-mode", "yes",
			"--daemonize", "no", "--loglevel", "notice", "--logfile", "")
		cmd.Dir = dir
		p, err := startProcess(fmt.Sprintf("redis-server.%d", attempt), dir, cmd)
		if err != nil {
			tb.Fatalf("peers: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		err = waitRedis(ctx, p, addr)
		cancel()
		if err == nil {
			tb.Cleanup(func() {
				if err := p.Stop(); err != nil {
					tb.Logf("peers: stopping redis-server: %v", err)
				}
			})
			return &Redis{Addr: addr, Dir: dir, Process: p}
		}
		_ = p.Stop()
		last = err
	}
	tb.Fatalf("peers: redis-server: %v", last)
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitRedis polls addr with a RESP PING until it answers +PONG, p exits or ctx ends. The
// answering process must be p: a port taken by someone else fails instead of being used.
func waitRedis(ctx context.Context, p *Process, addr string) error {
	for {
		if err := ping(ctx, addr); err == nil {
			if addrs, _ := ListenAddrs(p.Pid()); contains(addrs, addr) {
				return nil
			}
		}
		select {
		case <-p.Done():
			return fmt.Errorf("redis-server exited: %v\n%s", p.ExitErr(), p.Log.Tail(20))
		case <-ctx.Done():
			return fmt.Errorf("redis-server did not answer on %s: %w\n%s", addr, ctx.Err(), p.Log.Tail(20))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func ping(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if strings.TrimSpace(line) != "+PONG" {
		return fmt.Errorf("PING: %q", line)
	}
	return nil
}

// Restart starts redis-server again on the same address and directory (its data is gone: it
// keeps none) after Stop or Kill.
func (r *Redis) Restart(tb testing.TB) {
	tb.Helper()
	_ = r.Stop()
	_, port, _ := net.SplitHostPort(r.Addr)
	cmd := exec.Command(r.cmd.Path, "--bind", "127.0.0.1", "--port", port,
		"--dir", r.Dir, "--save", "", "--appendonly", "no", "--protected-mode", "yes",
		"--daemonize", "no", "--loglevel", "notice", "--logfile", "")
	cmd.Dir = r.Dir
	var p *Process
	var err error
	for range 50 { // the port is ours; a closing socket may hold it for a moment
		if p, err = startProcess("redis-server.restart", r.Dir, cmd); err != nil {
			tb.Fatalf("peers: %v", err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = waitRedis(ctx, p, r.Addr)
		cancel()
		if err == nil {
			break
		}
		_ = p.Stop()
		cmd = exec.Command(cmd.Path, cmd.Args[1:]...)
		cmd.Dir = r.Dir
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil {
		tb.Fatalf("peers: restarting redis-server: %v", err)
	}
	tb.Cleanup(func() { _ = p.Stop() })
	r.Process = p
}
