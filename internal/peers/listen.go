package peers

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// ListenAddrs returns the TCP addresses process pid is listening on, read from /proc.
//
// Peers are configured with port 0 so the kernel picks a free port without the pick-then-bind race;
// not every peer logs the port it got (notary-server prints "Starting on 127.0.0.1:0"), so the
// socket table is the one source that works for all of them.
func ListenAddrs(pid int) ([]string, error) {
	inodes, err := socketInodes(pid)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, table := range []string{"tcp", "tcp6"} {
		f, err := os.Open(filepath.Join("/proc", strconv.Itoa(pid), "net", table))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			// sl local_address rem_address st tx:rx tr:tm retrnsmt uid timeout inode
			if len(fields) < 10 || fields[3] != "0A" { // 0A = TCP_LISTEN
				continue
			}
			if !inodes[fields[9]] {
				continue
			}
			if a, err := parseProcAddr(fields[1]); err == nil {
				addrs = append(addrs, a)
			}
		}
		f.Close()
	}
	return addrs, nil
}

func socketInodes(pid int) (map[string]bool, error) {
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading sockets of pid %d: %w", pid, err)
	}
	inodes := make(map[string]bool)
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // fd closed meanwhile
		}
		if s, ok := strings.CutPrefix(target, "socket:["); ok {
			inodes[strings.TrimSuffix(s, "]")] = true
		}
	}
	return inodes, nil
}

// parseProcAddr decodes "0100007F:1F90" (IPv4 as a little-endian word, port big-endian hex).
func parseProcAddr(s string) (string, error) {
	ipHex, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return "", fmt.Errorf("bad address %q", s)
	}
	raw, err := hex.DecodeString(ipHex)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return "", fmt.Errorf("bad address %q", s)
	}
	ip := make(net.IP, len(raw))
	for i := 0; i < len(raw); i += 4 { // each 32-bit word is in host (little-endian) order
		ip[i], ip[i+1], ip[i+2], ip[i+3] = raw[i+3], raw[i+2], raw[i+1], raw[i]
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return "", fmt.Errorf("bad port in %q: %w", s, err)
	}
	return net.JoinHostPort(ip.String(), strconv.FormatUint(port, 10)), nil
}

// WaitListen polls until p listens on a TCP port, p exits, or ctx ends.
func WaitListen(ctx context.Context, p *Process) (string, error) {
	for {
		addrs, err := ListenAddrs(p.Pid())
		if err == nil && len(addrs) > 0 {
			return addrs[0], nil
		}
		select {
		case <-p.Done():
			return "", fmt.Errorf("%s exited before listening: %v\n%s", p.name, p.ExitErr(), p.Log.Tail(30))
		case <-ctx.Done():
			return "", fmt.Errorf("%s did not listen: %w\n%s", p.name, ctx.Err(), p.Log.Tail(30))
		case <-time.After(20 * time.Millisecond):
		}
	}
}
