package main

import "fmt"

// Check is one target of issue #4 against what this run measured.
type Check struct {
	Target   string
	Measured string
	Met      string // "yes", "no", or "n/a" (not measured)
}

func verdict(ok bool) string {
	if ok {
		return "yes"
	}
	return "no"
}

func findBlob(rows []BlobRow, system, cache string, n int) (BlobRow, bool) {
	for _, r := range rows {
		if r.System == system && r.Cache == cache && r.Clients == n && r.Errors == 0 {
			return r, true
		}
	}
	return BlobRow{}, false
}

func findTag(rows []TagRow, system, method string, c int) (TagRow, bool) {
	for _, r := range rows {
		if r.System == system && r.Method == method && r.Concurrency == c && r.Errors == 0 {
			return r, true
		}
	}
	return TagRow{}, false
}

// blobLimit is the most a row's system could deliver on this machine in this run: what the
// upstream delivers straight to the same number of clients over the same link ("direct"), and for
// a cold proxy, which hashes every byte in order on one core, no more than n × one core's SHA-256
// rate (the fan-out hashes once for all n clients). 0 if direct was not measured.
func blobLimit(rows []BlobRow, sha256MBps float64, b BlobRow) float64 {
	var d BlobRow
	ok := false
	for _, r := range rows {
		if r.System == "direct" && r.Clients == b.Clients && r.Link == b.Link && r.Errors == 0 {
			d, ok = r, true
		}
	}
	if !ok {
		return 0
	}
	if b.Cache == "cold" && sha256MBps > 0 {
		return min(d.MBps, float64(b.Clients)*sha256MBps)
	}
	return d.MBps
}

func checkTargets(rep *Report) []Check {
	var cs []Check
	sha := rep.sha256Limit()
	if t, ok := findBlob(rep.Blob, "trustgate", "cold", 1); !ok {
		cs = append(cs, Check{"blob, 1 client, cold: trustgate ≥ 0.80 × min(direct, one core's SHA-256)", "not measured (missing or failed row)", "n/a"})
	} else if lim := blobLimit(rep.Blob, sha, t); lim > 0 {
		d, _ := findBlob(rep.Blob, "direct", "", 1)
		cs = append(cs, Check{"blob, 1 client, cold: trustgate ≥ 0.80 × min(direct, one core's SHA-256)",
			fmt.Sprintf("%.0f vs min(%.0f, %.0f) = %.0f MB/s: %.2f×", t.MBps, d.MBps, sha, lim, t.MBps/lim), verdict(t.MBps >= 0.8*lim)})
	}
	if t, ok := findBlob(rep.Blob, "trustgate", "cold", 1); ok {
		if dc, ok := findBlob(rep.Blob, "distribution proxy", "cold", 1); ok {
			cs = append(cs, Check{"blob, 1 client: trustgate ≥ distribution proxy (both cold)",
				fmt.Sprintf("%.0f vs %.0f MB/s = %.2f×", t.MBps, dc.MBps, t.MBps/dc.MBps), verdict(t.MBps >= dc.MBps)})
		}
	}
	d16, ok1 := findBlob(rep.Blob, "direct", "", 16)
	t16, ok2 := findBlob(rep.Blob, "trustgate", "cold", 16)
	if !ok1 || !ok2 {
		cs = append(cs, Check{"blob, 16 clients, cold: trustgate ≥ 0.95× direct", "not measured (missing or failed row)", "n/a"})
	} else {
		cs = append(cs, Check{"blob, 16 clients, cold: trustgate ≥ 0.95× direct",
			fmt.Sprintf("%.0f vs %.0f MB/s = %.2f×", t16.MBps, d16.MBps, t16.MBps/d16.MBps), verdict(t16.MBps >= 0.95*d16.MBps)})
		if dc, ok := findBlob(rep.Blob, "distribution proxy", "cold", 16); ok {
			cs = append(cs, Check{"blob, 16 clients: trustgate ≥ 2× distribution proxy (both cold)",
				fmt.Sprintf("%.0f vs %.0f MB/s = %.2f×", t16.MBps, dc.MBps, t16.MBps/dc.MBps), verdict(t16.MBps >= 2*dc.MBps)})
		}
	}
	for _, n := range []int{1, 16} {
		target := fmt.Sprintf("blob, %d client(s), warm (verified spool retained): trustgate ≥ 0.95× direct", n)
		d, ok1 := findBlob(rep.Blob, "direct", "", n)
		t, ok2 := findBlob(rep.Blob, "trustgate", "warm", n)
		if !ok1 || !ok2 {
			cs = append(cs, Check{target, "not measured (missing or failed row)", "n/a"})
			continue
		}
		cs = append(cs, Check{target, fmt.Sprintf("%.0f vs %.0f MB/s = %.2f×", t.MBps, d.MBps, t.MBps/d.MBps), verdict(t.MBps >= 0.95*d.MBps)})
	}
	for _, t := range rep.Link {
		if t.System != "trustgate" {
			continue
		}
		target := fmt.Sprintf("blob over a %s link, 1 client, cold: trustgate ≥ 0.97× direct through the same link", t.Link)
		lim := blobLimit(rep.Link, sha, BlobRow{System: "direct", Clients: t.Clients, Link: t.Link})
		if lim <= 0 || t.Errors > 0 {
			cs = append(cs, Check{target, "not measured (missing or failed row)", "n/a"})
			continue
		}
		cs = append(cs, Check{target, fmt.Sprintf("%.0f vs %.0f MB/s = %.2f×", t.MBps, lim, t.MBps/lim), verdict(t.MBps >= 0.97*lim)})
	}
	if t, ok := findBlob(rep.Blob, "trustgate", "cold", 16); ok {
		rss := t.PeakRSSMiB
		if w, ok := findBlob(rep.Blob, "trustgate", "warm", 16); ok {
			rss = max(rss, w.PeakRSSMiB) // the same process, after the cold row
		}
		cs = append(cs, Check{"peak RSS ≤ 100 MiB, 16 clients × 1 GiB blob (cold, then warm, one process)",
			fmt.Sprintf("%.1f MiB (VmHWM, fresh process)", rss), verdict(rss > 0 && rss <= 100)})
	}
	for _, m := range []string{"HEAD", "GET"} {
		d, ok1 := findTag(rep.Tag, "direct", m, 32)
		t, ok2 := findTag(rep.Tag, "trustgate", m, 32)
		if !ok1 || !ok2 {
			cs = append(cs, Check{"warm signed-tag " + m + " rate ≥ 2× upstream", "not measured (missing or failed row)", "n/a"})
			continue
		}
		cs = append(cs, Check{"warm signed-tag " + m + " rate ≥ 2× upstream's tag rate (32 clients)",
			fmt.Sprintf("%.0f vs %.0f req/s = %.2f×", t.RPS, d.RPS, t.RPS/d.RPS), verdict(t.RPS >= 2*d.RPS)})
		added := t.P99ms - d.P99ms
		cs = append(cs, Check{"warm signed-tag " + m + " p99 added latency ≤ 2 ms (32 clients)",
			fmt.Sprintf("p99 %.2f − %.2f ms = %+.2f ms", t.P99ms, d.P99ms, added), verdict(added <= 2)})
		if d1, ok := findTag(rep.Tag, "direct", m, 1); ok {
			if t1, ok := findTag(rep.Tag, "trustgate", m, 1); ok {
				added := t1.P99ms - d1.P99ms
				cs = append(cs, Check{"warm signed-tag " + m + " p99 added latency ≤ 2 ms (1 client)",
					fmt.Sprintf("p99 %.3f − %.3f ms = %+.3f ms", t1.P99ms, d1.P99ms, added), verdict(added <= 2)})
			}
		}
	}
	if len(rep.TTL) > 0 {
		cs = append(cs, ttlChecks(rep.TTL)...)
	}
	for _, h := range rep.Herd {
		if h.System != "trustgate" {
			continue
		}
		switch h.What {
		case "tag":
			oneChain := h.Notary > 0
			for _, v := range h.NotaryBy {
				oneChain = oneChain && v == 1
			}
			manifestGETs := h.UpstreamBy.Match("GET", "manifest")
			cs = append(cs, Check{fmt.Sprintf("%d concurrent first pulls of a tag: one Notary chain, one manifest GET", h.Clients),
				fmt.Sprintf("%d/%d ok; notary: %s; upstream: %s", h.OK, h.Clients, h.NotaryBy, h.UpstreamBy),
				verdict(oneChain && manifestGETs == 1 && h.OK == h.Clients)})
		case "blob":
			blobGETs := h.UpstreamBy.Match("GET", "blob")
			cs = append(cs, Check{fmt.Sprintf("%d concurrent first pulls of a blob: one upstream download", h.Clients),
				fmt.Sprintf("%d/%d ok; upstream: %s", h.OK, h.Clients, h.UpstreamBy),
				verdict(blobGETs == 1 && h.OK == h.Clients)})
		}
	}
	return cs
}
