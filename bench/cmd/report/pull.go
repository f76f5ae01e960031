package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// PullRow is scenario 5: `crane pull --format oci` of the multi-layer image into a fresh
// directory. First is the first pull through a freshly started system; Repeat is the median of the
// following pulls on the same process.
type PullRow struct {
	System           string
	FirstS           float64
	RepeatS          float64
	Repeats          int
	Errors           int
	FirstErr         string `json:",omitempty"`
	UpstreamBlobGETs int    // during the first pull
}

func pullScenario(root *scope, w *world, repeats int) []PullRow {
	var rows []PullRow
	pull := func(sc *scope, host string) (time.Duration, error) {
		dir := filepath.Join(sc.TempDir(), "image")
		defer os.RemoveAll(dir)
		t0 := time.Now()
		res := peers.Crane(sc, "pull", "--format", "oci", host+"/"+w.multi.Repo+":"+w.multi.Tag, dir)
		return time.Since(t0), res.Err
	}
	series := func(system string, host string, sc *scope) PullRow {
		r := PullRow{System: system, Repeats: repeats}
		var rep []float64
		for i := range repeats + 1 {
			mark := w.reg.Log.Len()
			d, err := pull(sc, host)
			if err != nil {
				r.Errors++
				if r.FirstErr == "" {
					r.FirstErr = strings.TrimSpace(err.Error())
				}
				continue
			}
			if i == 0 {
				r.FirstS = d.Seconds()
				time.Sleep(200 * time.Millisecond)
				r.UpstreamBlobGETs = upstreamBlobGETs(w.reg, mark)
			} else {
				rep = append(rep, d.Seconds())
			}
		}
		if len(rep) > 0 {
			slices.Sort(rep)
			r.RepeatS = rep[len(rep)/2]
		}
		root.Logf("pull: %-20s first %.2fs repeat %.2fs upstream blob GETs (first) %d errors %d %s",
			system, r.FirstS, r.RepeatS, r.UpstreamBlobGETs, r.Errors, r.FirstErr)
		return r
	}
	sc := root.sub("pull-direct")
	rows = append(rows, series("direct", w.reg.Host, sc))
	sc.close()

	sc = root.sub("pull-trustgate")
	g := w.gate(sc, w.reg.URL, w.notCount.URL)
	rows = append(rows, series("trustgate", g.Host, sc))
	sc.close()

	sc = root.sub("pull-distribution")
	d := startDistProxy(sc, w.reg.URL)
	rows = append(rows, series("distribution proxy", d.Host, sc))
	sc.close()
	return rows
}
