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

func checkTargets(rep *Report) []Check {
	var cs []Check
	for _, n := range []int{1, 16} {
		d, ok1 := findBlob(rep.Blob, "direct", "", n)
		t, ok2 := findBlob(rep.Blob, "trustgate", "cold", n)
		if !ok1 || !ok2 {
			cs = append(cs, Check{fmt.Sprintf("blob, %d client(s): trustgate ≥ 0.95× direct", n), "not measured (errors)", "n/a"})
		} else {
			cs = append(cs, Check{fmt.Sprintf("blob, %d client(s): trustgate ≥ 0.95× direct", n),
				fmt.Sprintf("%.0f vs %.0f MB/s = %.2f×", t.MBps, d.MBps, t.MBps/d.MBps), verdict(t.MBps >= 0.95*d.MBps)})
		}
		dc, ok3 := findBlob(rep.Blob, "distribution proxy", "cold", n)
		if ok2 && ok3 {
			cs = append(cs, Check{fmt.Sprintf("blob, %d client(s): trustgate ≥ distribution proxy (both cold)", n),
				fmt.Sprintf("%.0f vs %.0f MB/s = %.2f×", t.MBps, dc.MBps, t.MBps/dc.MBps), verdict(t.MBps >= dc.MBps)})
		}
	}
	if t, ok := findBlob(rep.Blob, "trustgate", "cold", 16); ok {
		cs = append(cs, Check{"peak RSS ≤ 100 MiB, 16 clients × 1 GiB blob",
			fmt.Sprintf("%.1f MiB (VmHWM, fresh process)", t.PeakRSSMiB), verdict(t.PeakRSSMiB > 0 && t.PeakRSSMiB <= 100)})
	}
	for _, m := range []string{"HEAD", "GET"} {
		d, ok1 := findTag(rep.Tag, "direct", m, 32)
		t, ok2 := findTag(rep.Tag, "trustgate", m, 32)
		if !ok1 || !ok2 {
			cs = append(cs, Check{"warm signed-tag " + m + " rate ≥ 2× upstream", "not measured (errors)", "n/a"})
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
