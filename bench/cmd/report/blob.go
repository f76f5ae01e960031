package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/trustgate/trustgate/bench"
	"github.com/trustgate/trustgate/internal/peers"
)

// BlobRow is scenario 1: n clients GET the same ~1 GiB blob at the same moment.
type BlobRow struct {
	System  string
	Clients int
	// Cache is "cold" for a proxy that has never seen the blob, "warm" for the second round on
	// the same proxy, "" for the upstream itself.
	Cache         string
	Rounds        int     // rounds measured; figures are the median round's (peak RSS: the highest)
	Seconds       float64 // wall time until the last client finished
	MBps          float64 // all bytes received / wall time (MB = 10^6 bytes)
	PerClientMBps float64 // median of each client's bytes / its own time
	Errors        int
	FirstErr      string `json:",omitempty"`
	// PeakRSSMiB is the server's VmHWM at the end of the row; each trustgate row is a fresh
	// process, each distribution proxy cold row too (its warm row follows on the same process).
	PeakRSSMiB       float64
	UpstreamBlobGETs int // blob GETs the upstream registry's access log shows for this row
	// CachedAfterMs (distribution proxy, cold rows): how long after the cold pull ended the blob
	// appeared in its storage; the warm row starts only then.
	CachedAfterMs float64 `json:",omitempty"`
	// MinMBps and MaxMBps are the slowest and fastest round (equal to MBps for one round).
	MinMBps, MaxMBps float64
	// CPUSeconds is the CPU time (user + system) the serving process used during the row: the
	// upstream registry for direct rows, the proxy otherwise; 0 if unknown. It moves less than
	// MB/s with what else the machine runs (not nothing: a busy host slows each core too).
	CPUSeconds float64 `json:",omitempty"`
	// GB is the bytes the clients received, in 10^9.
	GB float64 `json:",omitempty"`
	// Link names the rate-limited link between the system and the upstream registry ("" =
	// loopback, unlimited); see linkScenario.
	Link string `json:",omitempty"`

	ended time.Time // when the last client finished
}

// spoolYAML is what the blob scenarios add to trustgate's configuration: a spool budget that
// retains the scenario's blob (a tar a little over -blob-size; the default budget is 1 GiB), so
// the warm rows measure serving a verified, retained spool. Left out when -gate-yaml sets it.
func (w *world) spoolYAML() string {
	if strings.Contains(w.gateYAML, "blob_spool_bytes") {
		return ""
	}
	return fmt.Sprintf("blob_spool_bytes: %d", 2*w.big.Layers[0].Size)
}

// blobRun measures one row: n clients GET the scenario's blob from base at the same moment.
func blobRun(root *scope, w *world, system, cache, base string, n, pid int) BlobRow {
	layer := w.big.Layers[0]
	client := &http.Client{Transport: bench.NewTransport(n)}
	defer client.CloseIdleConnections()
	// Start every row with no dirty pages from the previous one (distribution's cache fill,
	// trustgate's spool): writeback of another row's gigabyte would be charged to this one.
	syscall.Sync()
	mark := w.reg.Log.Len()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cpuPid := pid
	if cpuPid == 0 {
		cpuPid = w.reg.Pid()
	}
	cpu0, cpuErr := cpuTime(cpuPid)
	wall, fs := bench.FetchAll(ctx, client, blobURL(base, w.big.Repo, layer.Digest), n, nil)
	ended := time.Now()
	cpu1, cpuErr1 := cpuTime(cpuPid)
	time.Sleep(300 * time.Millisecond) // the access log line is written after the response
	r := BlobRow{System: system, Clients: n, Cache: cache, Rounds: 1, Seconds: wall.Seconds(), PeakRSSMiB: -1, ended: ended,
		UpstreamBlobGETs: upstreamBlobGETs(w.reg, mark)}
	var total int64
	var per []float64
	for _, f := range fs {
		total += f.Bytes
		if f.Err != nil {
			r.Errors++
			if r.FirstErr == "" {
				r.FirstErr = f.Err.Error()
			}
			continue
		}
		per = append(per, float64(f.Bytes)/1e6/f.Elapsed.Seconds())
	}
	r.MBps = float64(total) / 1e6 / wall.Seconds()
	r.GB = float64(total) / 1e9
	if cpuErr == nil && cpuErr1 == nil {
		r.CPUSeconds = cpu1 - cpu0
	}
	r.MinMBps, r.MaxMBps = r.MBps, r.MBps
	if len(per) > 0 {
		slices.Sort(per)
		r.PerClientMBps = per[len(per)/2]
	}
	if pid > 0 {
		if rss, err := peers.PeakRSS(pid); err == nil {
			r.PeakRSSMiB = mib(rss)
		}
	}
	root.Logf("blob: %-20s %-4s %2d clients: %.2fs, %.0f MB/s, rss %.1f MiB, upstream blob GETs %d, errors %d %s",
		system, cache, n, r.Seconds, r.MBps, r.PeakRSSMiB, r.UpstreamBlobGETs, r.Errors, r.FirstErr)
	return r
}

func blobScenario(root *scope, w *world, rounds int, out string, prof *[]Profile, sha *[]float64) []BlobRow {
	layer := w.big.Layers[0]
	var rows []BlobRow
	run := func(system, cache, base string, n, pid int) BlobRow {
		return blobRun(root, w, system, cache, base, n, pid)
	}

	// Peak RSS is a high-water mark, so every trustgate row is a fresh process: the 16-client
	// figure is not inflated (or hidden) by the 1-client run before it. distribution's cold rows
	// are fresh processes with empty storage; its warm row follows on the same process.
	// The warm row follows on the same process, served from the spool the cold pull verified and
	// retained.
	gateRows := func(n int) (cold, warm BlobRow) {
		sc := root.sub("blob-trustgate")
		defer sc.close()
		g := w.gateWith(sc, w.reg.URL, w.notCount.URL, w.spoolYAML())
		prime(sc, g.URL, w.big)
		cold = run("trustgate", "cold", g.URL, n, g.Pid())
		return cold, run("trustgate", "warm", g.URL, n, g.Pid())
	}
	distRows := func(n int) (cold, warm BlobRow) {
		sc := root.sub("blob-distribution")
		defer sc.close()
		d := startDistProxy(sc, w.reg.URL)
		cold = run("distribution proxy", "cold", d.URL, n, d.Pid())
		if err := d.waitCached(layer.Digest, time.Minute); err != nil {
			sc.Fatalf("distribution proxy: %v", err)
		}
		took := time.Since(cold.ended)
		cold.CachedAfterMs = ms(took)
		root.Logf("blob: distribution proxy committed the blob to its cache %v after the cold pull ended", took.Round(time.Millisecond))
		return cold, run("distribution proxy", "warm", d.URL, n, d.Pid())
	}

	// 1 client: interleaved rounds (see tagScenario), median reported.
	per := map[string][]BlobRow{}
	for round := range rounds {
		steps := []func(){
			func() { per["direct"] = append(per["direct"], run("direct", "", w.reg.URL, 1, 0)) },
			func() {
				c, wm := gateRows(1)
				per["trustgate"], per["twarm"] = append(per["trustgate"], c), append(per["twarm"], wm)
			},
			func() {
				c, wm := distRows(1)
				per["dcold"], per["dwarm"] = append(per["dcold"], c), append(per["dwarm"], wm)
			},
			// The hashing limit, measured between the rows it bounds, under the same load.
			func() { *sha = append(*sha, sha256Speed(500*time.Millisecond)) },
		}
		for i := range steps {
			steps[(i+round)%len(steps)]()
		}
	}
	for _, k := range []string{"direct", "trustgate", "twarm", "dcold", "dwarm"} {
		rows = append(rows, medianBlobRow(per[k]))
	}
	// 16 clients × 1 GiB: one round each (a round moves 16 GiB).
	rows = append(rows, run("direct", "", w.reg.URL, 16, 0))
	tc, tw := gateRows(16)
	rows = append(rows, tc, tw)
	c, wm := distRows(16)
	rows = append(rows, c, wm)

	// A profiled extra round, not part of the table (perf costs a few percent).
	sc := root.sub("blob-profile")
	defer sc.close()
	g := w.gateWith(sc, w.reg.URL, w.notCount.URL, w.spoolYAML())
	prime(sc, g.URL, w.big)
	pr, err := startPerf(g.Pid(), filepath.Join(out, "perf-blob-1client.data"))
	if err != nil {
		*prof = append(*prof, Profile{Scenario: "blob, 1 client", Err: err.Error()})
		return rows
	}
	run("trustgate (perf)", "cold", g.URL, 1, 0)
	*prof = append(*prof, pr.stop("blob streaming, 1 client (scenario 1)"))
	if pr, err = startPerf(g.Pid(), filepath.Join(out, "perf-blob-1client-warm.data")); err == nil {
		run("trustgate (perf)", "warm", g.URL, 1, 0)
		*prof = append(*prof, pr.stop("blob streaming, 1 client, warm (scenario 1)"))
	}
	return rows
}

// linkScenario is scenario 1 over a realistic link: the upstream registry behind a rate-limited
// loopback link (bench.Link) of each rate, 1 client, direct and trustgate (cold, a fresh process
// per round) through the same link, interleaved rounds, median reported.
func linkScenario(root *scope, w *world, rounds int, rates []float64, sha *[]float64) []BlobRow {
	var rows []BlobRow
	for _, bits := range rates {
		l, err := bench.StartLink(w.reg.Host, bits)
		if err != nil {
			root.Fatal(err)
		}
		name := fmt.Sprintf("%g Gbit/s", bits/1e9)
		var direct, gate []BlobRow
		for round := range rounds {
			steps := []func(){
				func() { direct = append(direct, blobRun(root, w, "direct", "", l.URL, 1, 0)) },
				func() {
					sc := root.sub("link-trustgate")
					defer sc.close()
					g := w.gateWith(sc, l.URL, w.notCount.URL, w.spoolYAML())
					prime(sc, g.URL, w.big)
					gate = append(gate, blobRun(root, w, "trustgate", "cold", g.URL, 1, g.Pid()))
				},
				func() { *sha = append(*sha, sha256Speed(500*time.Millisecond)) },
			}
			for i := range steps {
				steps[(i+round)%len(steps)]()
			}
		}
		_ = l.Close()
		for _, rs := range [][]BlobRow{direct, gate} {
			r := medianBlobRow(rs)
			r.Link = name
			rows = append(rows, r)
		}
	}
	return rows
}

// medianBlobRow combines rounds: median throughput and time, highest RSS and upstream count of
// any round, summed errors.
func medianBlobRow(rs []BlobRow) BlobRow {
	if len(rs) == 0 {
		return BlobRow{}
	}
	out := rs[0]
	out.Rounds = len(rs)
	out.Errors, out.UpstreamBlobGETs = 0, 0
	var sec, mbps, per, cached, cpu []float64
	for _, r := range rs {
		cached = append(cached, r.CachedAfterMs)
		out.Errors += r.Errors
		out.UpstreamBlobGETs = max(out.UpstreamBlobGETs, r.UpstreamBlobGETs)
		out.PeakRSSMiB = max(out.PeakRSSMiB, r.PeakRSSMiB)
		if out.FirstErr == "" {
			out.FirstErr = r.FirstErr
		}
		sec, mbps, per = append(sec, r.Seconds), append(mbps, r.MBps), append(per, r.PerClientMBps)
		cpu = append(cpu, r.CPUSeconds)
	}
	out.CPUSeconds = median(cpu)
	out.Seconds, out.MBps, out.PerClientMBps, out.CachedAfterMs = median(sec), median(mbps), median(per), median(cached)
	out.MinMBps, out.MaxMBps = slices.Min(mbps), slices.Max(mbps)
	return out
}

// cpuTime is the CPU time (user + system, seconds) process pid has used so far, from
// /proc/<pid>/stat (utime and stime, in USER_HZ = 100 ticks per second on Linux).
func cpuTime(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may contain spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q stime %q", pid, f[11], f[12])
	}
	return float64(utime+stime) / 100, nil
}
