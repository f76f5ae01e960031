package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Profile is a CPU profile of the real trustgate process taken with Linux perf while a scenario
// ran. trustgate serves no pprof endpoint, and profiling a copy of the handler inside the driver
// would also profile the load generator; perf samples the very process the figures come from.
type Profile struct {
	Scenario string
	File     string   // perf.data, kept in bench/results/ (not committed)
	Err      string   // why there is no profile
	Top      []Sample // hottest symbols, self time
	DSOs     []Sample // share per binary/kernel
	// Inclusive is time spent in (and below) trustgate's own functions and a few telling library
	// frames (regexp, slog, GC, syscalls, sha256): the answer to "where does a request go".
	Inclusive []Sample
}

// telling are library frames whose inclusive share explains a profile.
var telling = []string{
	"net/http.(*conn).serve", "net/http.(*conn).readRequest", "net/http.(*response).finishRequest",
	"gorilla/mux.(*Router).Match", "regexp.(*Regexp).doExecute", "distribution/reference.",
	"log/slog.(*Logger).logAttrs", "runtime.gcBgMarkWorker", "runtime.mallocgc",
	"syscall.write", "syscall.read", "syscall.pread", "syscall.pwrite", "sha256.blockSHANI",
	"io.copyBuffer", "net/http.(*persistConn).readLoop", "os.(*File).Write", "os.(*File).ReadAt",
	"os.(*File).Read", "internal/poll.SendFile", "internal/poll.Splice",
}

// Sample is one line of `perf report`: a share of CPU samples.
type Sample struct {
	Percent float64
	Name    string
}

type perfRun struct {
	cmd  *exec.Cmd
	file string
	errb bytes.Buffer
}

// startPerf begins sampling pid (call-graphs via frame pointers, which Go keeps). A missing perf
// is reported in the profile, not fatal: the figures stand without it.
func startPerf(pid int, file string) (*perfRun, error) {
	bin, err := exec.LookPath("perf")
	if err != nil {
		return nil, fmt.Errorf("perf not installed (apt-get install linux-perf): %w", err)
	}
	r := &perfRun{file: file}
	r.cmd = exec.Command(bin, "record", "-F", "2999", "-g", "-p", strconv.Itoa(pid), "-o", file)
	r.cmd.Stdout, r.cmd.Stderr = &r.errb, &r.errb
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf record: %w", err)
	}
	time.Sleep(300 * time.Millisecond) // perf attaches asynchronously
	return r, nil
}

// stop ends sampling and summarises the profile.
func (r *perfRun) stop(scenario string) Profile {
	p := Profile{Scenario: scenario, File: r.file}
	_ = r.cmd.Process.Signal(os.Interrupt)
	if err := r.cmd.Wait(); err != nil {
		if _, statErr := os.Stat(r.file); statErr != nil {
			p.Err = fmt.Sprintf("perf record: %v: %s", err, strings.TrimSpace(r.errb.String()))
			return p
		}
	}
	var err error
	if p.Top, err = perfReport(r.file, "symbol"); err != nil {
		p.Err = err.Error()
		return p
	}
	p.DSOs, _ = perfReport(r.file, "dso")
	p.Inclusive, _ = perfInclusive(r.file)
	return p
}

// perfInclusive lists children-inclusive shares of trustgate's functions and the telling frames.
func perfInclusive(file string) ([]Sample, error) {
	out, err := exec.Command("perf", "report", "-i", file, "--stdio", "--children", "-g", "none",
		"--sort", "symbol", "--percent-limit", "0.5").Output()
	if err != nil {
		return nil, fmt.Errorf("perf report --children %s: %w", filepath.Base(file), err)
	}
	return parseInclusive(out), nil
}

// parseInclusive reads `perf report --children --stdio -g none --sort symbol` output.
func parseInclusive(out []byte) []Sample {
	var s []Sample
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		// children% self% [.] symbol...
		if len(f) < 4 || !strings.HasSuffix(f[0], "%") || f[0][0] == '#' {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSuffix(f[0], "%"), 64)
		if err != nil {
			continue
		}
		name := f[3] // then perf's empty IPC columns
		keep := strings.Contains(name, "trustgate/trustgate/")
		for _, t := range telling {
			keep = keep || strings.HasSuffix(name, t) || strings.HasSuffix(name, t+".abi0") ||
				(strings.HasSuffix(t, ".") && strings.Contains(name, t))
		}
		if keep && !strings.HasSuffix(name, "-fm") {
			s = append(s, Sample{Percent: v, Name: strings.TrimPrefix(name, "github.com/trustgate/trustgate/")})
		}
		if len(s) == 24 {
			break
		}
	}
	return s
}

func perfReport(file, sortKey string) ([]Sample, error) {
	out, err := exec.Command("perf", "report", "-i", file, "--stdio", "--no-children", "-g", "none",
		"--sort", sortKey, "--percent-limit", "0.8").Output()
	if err != nil {
		return nil, fmt.Errorf("perf report %s: %w", filepath.Base(file), err)
	}
	return parseSelf(out), nil
}

// parseSelf reads `perf report --no-children --stdio -g none --sort <key>` output.
func parseSelf(out []byte) []Sample {
	var s []Sample
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		pct, rest, ok := strings.Cut(line, "%")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(pct), 64)
		if err != nil {
			continue
		}
		name := strings.TrimSpace(rest)
		if i := strings.Index(name, "  "); i > 0 { // drop perf's empty trailing columns
			name = name[:i]
		}
		s = append(s, Sample{Percent: v, Name: name})
		if len(s) == 18 {
			break
		}
	}
	return s
}
