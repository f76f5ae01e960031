package main

import (
	"bufio"
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
}

func describeMachine(tb *scope) Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: goVersion(), Date: time.Now().UTC(), Peers: map[string]string{}}
	m.LoadBefore = loadAvg()
	m.CPUModel = procField("/proc/cpuinfo", "model name")
	m.MemTotal = procField("/proc/meminfo", "MemTotal")
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output(); err == nil {
		m.Commit = strings.TrimSpace(string(out))
		if out, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(out) > 0 {
			m.Commit += " (+ uncommitted changes in the tree)"
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
