package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// StoreRow is scenario 6: `crane pull --format oci` of the multi-layer image from trustgate
// replicas sharing a blob store (blob_store: s3 on a versitygw server with its posix backend, on
// loopback), against the upstream directly. First is a fresh process's first pull; Repeat the
// median of the next pulls on it.
type StoreRow struct {
	System           string
	FirstS           float64
	RepeatS          float64
	Repeats          int
	MBps             float64 // image bytes / median pull time (repeats, or the first pull alone)
	UpstreamBlobGETs int     // over all of the row's pulls
	Errors           int
	FirstErr         string `json:",omitempty"`
}

func storeScenario(root *scope, w *world, repeats int) []StoreRow {
	var imageBytes int64
	for _, l := range w.multi.Layers {
		imageBytes += l.Size
	}
	ref := func(host string) string { return host + "/" + w.multi.Repo + ":" + w.multi.Tag }
	series := func(sc *scope, system, host string, n int) StoreRow {
		r := StoreRow{System: system, Repeats: n - 1}
		mark := w.reg.Log.Len()
		var rep []float64
		for i := range n {
			dir := filepath.Join(sc.TempDir(), "image")
			t0 := time.Now()
			res := peers.Crane(sc, "pull", "--format", "oci", ref(host), dir)
			d := time.Since(t0).Seconds()
			os.RemoveAll(dir)
			switch {
			case res.Err != nil:
				r.Errors++
				if r.FirstErr == "" {
					r.FirstErr = strings.TrimSpace(res.Err.Error())
				}
			case i == 0:
				r.FirstS = d
			default:
				rep = append(rep, d)
			}
		}
		time.Sleep(300 * time.Millisecond) // the access log line is written after the response
		r.UpstreamBlobGETs = upstreamBlobGETs(w.reg, mark)
		med := r.FirstS
		if len(rep) > 0 {
			slices.Sort(rep)
			r.RepeatS = rep[len(rep)/2]
			med = r.RepeatS
		}
		if med > 0 {
			r.MBps = float64(imageBytes) / 1e6 / med
		}
		root.Logf("store: %-45s first %.2fs repeat %.2fs %.0f MB/s upstream blob GETs %d errors %d %s",
			system, r.FirstS, r.RepeatS, r.MBps, r.UpstreamBlobGETs, r.Errors, r.FirstErr)
		return r
	}

	s3 := peers.StartVersityGW(root)
	store := fmt.Sprintf("blob_store:\n  storage: %s", s3.StorageYAML())
	var rows []StoreRow

	sc := root.sub("store-direct")
	rows = append(rows, series(sc, "direct", w.reg.Host, repeats+1))
	sc.close()

	sc = root.sub("store-writer")
	a := w.gateWith(sc, w.reg.URL, w.notary.URL, store)
	rows = append(rows, series(sc, "trustgate A: empty store (upstream, then stored)", a.Host, 1))
	for _, l := range w.multi.Layers {
		hx := strings.TrimPrefix(l.Digest, "sha256:")
		file := s3.ObjectFile("trustgate/v1/docker.io/blobs/sha256/" + hx[:2] + "/" + hx)
		for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(20 * time.Millisecond) {
			if fi, err := os.Stat(file); err == nil && fi.Size() == l.Size {
				break
			}
			if time.Now().After(deadline) {
				sc.Fatalf("layer %s not in the store after 2 minutes", l.Digest)
			}
		}
	}
	sc.close()

	// B keeps no spool of its own (blob_spool_bytes: 0): each of its pulls reads every blob from
	// the shared store and hashes it again.
	sc = root.sub("store-reader")
	b := w.gateWith(sc, w.reg.URL, w.notary.URL, store+"\nblob_spool_bytes: 0")
	rows = append(rows, series(sc, "trustgate B: warm shared store, no local spool", b.Host, repeats+1))
	sc.close()
	return rows
}
