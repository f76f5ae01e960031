package main

import (
	"bufio"
	"crypto/sha256"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// Machine describes where the figures come from; they mean little without it.
type Machine struct {
	CPUs     int
	CPUModel string
	MemTotal string
	Kernel   string
	Go       string
	Commit   string
	Peers    map[string]string
	Date     time.Time
	// Load averages (/proc/loadavg) when the run started and ended: other work on the machine
	// takes cores from every system measured here, so a loaded machine lowers all figures.
	LoadBefore, LoadAfter string
	// SHA256MBps is one core's SHA-256 throughput (crypto/sha256, 256 KiB writes). A proxy that
	// verifies a blob while streaming it hashes every byte in order, so with one client this is
	// its ceiling, whatever else it does.
	SHA256MBps float64
}

func describeMachine(tb *scope) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: goVersion(), Date: time.Now().UTC(), Peers: map[string]string{}}
	m.LoadBefore = loadAvg()
	m.SHA256MBps = sha256Speed(time.Second)
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	m.MemTotal = procField("/proc/meminfo", "MemTotal")
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		// Other work lands in the same tree while it is measured; name what the binary had on top.
		if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=all").Output(); err == nil && len(out) > 0 {
			var files []string
			for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				if f := strings.TrimSpace(l[min(3, len(l)):]); strings.HasSuffix(f, ".go") && !strings.HasSuffix(f, "_test.go") {
					files = append(files, f)
				}
			}
			if len(files) > 0 {
				if len(files) > 12 {
					files = append(files[:12], "…")
				}
				m.Commit += " + uncommitted changes to " + strings.Join(files, ", ")
			}
		}
	}
	for name, args := range map[string][]string{
		"registry":      {"--version"},
		"notary-server": {"-version"},
		"notary":        {"version"},
		"crane":         {"version"},
	} {
		out, err := exec.Command(peers.Binary(tb, name), args...).CombinedOutput()
		v := strings.TrimSpace(string(out))
		if err != nil && v == "" {
			v = err.Error()
		}
		v = strings.Join(strings.Fields(v), " ")
		m.Peers[name] = v
	}
	return m
}

func goVersion() string {
	out, err := exec.Command("go", "version").Output()
	if err != nil {
		return runtime.Version()
	}
	return strings.TrimSpace(string(out))
}

func procField(file, key string) string {
	f, err := os.Open(file)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func sha256Speed(d time.Duration) float64 {
	buf := make([]byte, 256<<10)
	h := sha256.New()
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		h.Write(buf)
		n += len(buf)
	}
	return float64(n) / 1e6 / time.Since(start).Seconds()
}
