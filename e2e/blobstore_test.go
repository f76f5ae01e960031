package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trustgate/trustgate/internal/peers"
)

// TestBlobStoreSharedByReplicas is issue 10's shared blob store with real servers: two trustgate
// processes share one bucket of a versitygw S3 server (through distribution's s3 driver). A
// pulls a signed image and stores its verified blobs; B serves the same blobs from the bucket
// with no blob GET reaching the upstream registry; an object altered in the bucket to the same
// size is never served complete (B hashes what it reads) and is deleted, the retry coming from
// upstream; and with the S3 server stopped B still serves from upstream.
func TestBlobStoreSharedByReplicas(t *testing.T) {
	w := newWorld(t)
	const repo = "library/shared"
	img := w.pushSigned(t, repo, "v1")
	s3 := peers.StartVersityGW(t)
	store := fmt.Sprintf("blob_store:\n  storage: %s\n", s3.StorageYAML())
	a := w.gate(t, peers.GateConfig{Extra: store})
	// B keeps no spool of its own, so every blob it serves comes from the store or upstream.
	b := w.gate(t, peers.GateConfig{Extra: store + "blob_spool_bytes: 0\nhealth: {main_listener: true}\n"})

	stored := func(dgst string) string {
		hx := strings.TrimPrefix(dgst, "sha256:")
		return s3.ObjectFile("trustgate/v1/docker.io/blobs/sha256/" + hx[:2] + "/" + hx)
	}
	pull := func(g *peers.Trustgate) {
		t.Helper()
		out := filepath.Join(t.TempDir(), "img.tar")
		if r := peers.Crane(t, "pull", g.Host+"/"+repo+":v1", out); r.Err != nil {
			t.Fatalf("crane pull through %s: %v\n%s", g.Host, r.Err, r.Stderr)
		}
	}
	blobGETs := func(mark int) []string {
		time.Sleep(200 * time.Millisecond) // the registry logs just after its response
		var out []string
		for _, e := range w.reg.RequestsSince(mark) {
			if e.Method == http.MethodGet && strings.Contains(e.Path, "/blobs/") {
				out = append(out, e.Path)
			}
		}
		return out
	}

	pull(a)
	for _, l := range img.Layers {
		eventually(t, 30*time.Second, "layer "+l.Digest+" in the bucket", func() (bool, string) {
			fi, err := os.Stat(stored(l.Digest))
			return err == nil && fi.Size() == l.Size, fmt.Sprint(err)
		})
	}

	t.Run("B serves from the store, no blob GET upstream", func(t *testing.T) {
		mark := w.reg.Log.Len()
		pull(b)
		for _, l := range img.Layers {
			r := get(t, http.MethodGet, b.URL+"/v2/"+repo+"/blobs/"+l.Digest)
			if r.code != http.StatusOK || r.digest() != l.Digest {
				t.Fatalf("GET %s through B: %d, digest %s", l.Digest, r.code, r.digest())
			}
		}
		if gets := blobGETs(mark); len(gets) != 0 {
			t.Errorf("B sent %d blob GETs upstream, want 0: %v", len(gets), gets)
		}
	})

	t.Run("same-size tamper is not served complete", func(t *testing.T) {
		l := img.Layers[0]
		f, err := os.OpenFile(stored(l.Digest), os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt([]byte("tampered"), l.Size/2); err != nil {
			t.Fatal(err)
		}
		f.Close()
		mark := w.reg.Log.Len()
		resp, err := http.Get(b.URL + "/v2/" + repo + "/blobs/" + l.Digest)
		if err == nil {
			body, rerr := readAllDigest(resp)
			if resp.StatusCode == http.StatusOK && rerr == nil {
				t.Fatalf("a tampered stored blob was served complete: digest %s (want %s)", body, l.Digest)
			}
			t.Logf("tampered object: status %d, body ended with %v", resp.StatusCode, rerr)
		}
		eventually(t, 10*time.Second, "the tampered object deleted", func() (bool, string) {
			_, err := os.Stat(stored(l.Digest))
			return os.IsNotExist(err), fmt.Sprint(err)
		})
		r := get(t, http.MethodGet, b.URL+"/v2/"+repo+"/blobs/"+l.Digest)
		if r.code != http.StatusOK || r.digest() != l.Digest {
			t.Fatalf("retry: %d, digest %s", r.code, r.digest())
		}
		if gets := blobGETs(mark); len(gets) != 1 {
			t.Errorf("retry: %d blob GETs upstream, want 1: %v", len(gets), gets)
		}
		eventually(t, 30*time.Second, "the blob stored again", func() (bool, string) {
			fi, err := os.Stat(stored(l.Digest))
			return err == nil && fi.Size() == l.Size, fmt.Sprint(err)
		})
	})

	t.Run("store down: served from upstream", func(t *testing.T) {
		if err := s3.Stop(); err != nil {
			t.Fatal(err)
		}
		mark := w.reg.Log.Len()
		for _, l := range img.Layers {
			r := get(t, http.MethodGet, b.URL+"/v2/"+repo+"/blobs/"+l.Digest)
			if r.code != http.StatusOK || r.digest() != l.Digest {
				t.Fatalf("GET %s with the store down: %d %s", l.Digest, r.code, r.body)
			}
			if h := get(t, http.MethodHead, b.URL+"/v2/"+repo+"/blobs/"+l.Digest); h.code != http.StatusOK {
				t.Fatalf("HEAD %s with the store down: %d", l.Digest, h.code)
			}
		}
		if gets := blobGETs(mark); len(gets) != len(img.Layers) {
			t.Errorf("%d blob GETs upstream, want %d", len(gets), len(img.Layers))
		}
		if !strings.Contains(strings.Join(b.Log.Lines(), "\n"), "blob store unavailable") {
			t.Errorf("B's log does not say the store is unavailable")
		}
		// /readyz names the failing store, and B stays ready: it serves from upstream.
		r := get(t, http.MethodGet, b.URL+"/readyz")
		var ready struct {
			Ready  bool
			Checks []struct {
				Name     string
				OK       bool
				Optional bool
				Detail   string
			}
		}
		if err := json.Unmarshal(r.body, &ready); err != nil {
			t.Fatalf("/readyz: %d %s", r.code, r.body)
		}
		found := false
		for _, c := range ready.Checks {
			if strings.HasPrefix(c.Name, "blob_store ") {
				found = true
				if c.OK || !c.Optional || c.Detail == "" {
					t.Errorf("/readyz blob store check with the store down: %+v", c)
				}
			}
		}
		if !found {
			t.Errorf("/readyz has no blob store check: %s", r.body)
		}
		t.Logf("/readyz with the store down: %d %s", r.code, r.body)
	})
}

// readAllDigest reads resp's body to the end and returns its digest, and the error that ended it
// (nil for a complete body).
func readAllDigest(resp *http.Response) (string, error) {
	defer resp.Body.Close()
	h := sha256.New()
	_, err := io.Copy(h, resp.Body)
	return "sha256:" + hex.EncodeToString(h.Sum(nil)), err
}

// TestBlobStoreConcurrentColdPulls: many concurrent first pulls of one blob spread over three
// replicas sharing a store download it from upstream at most once per replica (replicas do not
// coordinate; each fans its own download out), every response complete and right; afterwards a
// fourth, fresh replica serves it from the store.
func TestBlobStoreConcurrentColdPulls(t *testing.T) {
	w := newWorld(t)
	const repo = "library/herd"
	img := w.pushSigned(t, repo, "v1")
	s3 := peers.StartVersityGW(t)
	store := fmt.Sprintf("blob_store:\n  storage: %s\n", s3.StorageYAML())
	var gates []*peers.Trustgate
	for range 3 {
		g := w.gate(t, peers.GateConfig{Extra: store})
		if r := getManifest(t, g, repo, "v1"); r.code != http.StatusOK {
			t.Fatalf("manifest: %d", r.code)
		}
		gates = append(gates, g)
	}
	layer := img.Layers[0]
	mark := w.reg.Log.Len()
	const clients = 30
	errs := make(chan string, clients)
	for i := range clients {
		go func() {
			resp, err := http.Get(gates[i%len(gates)].URL + "/v2/" + repo + "/blobs/" + layer.Digest)
			if err != nil {
				errs <- err.Error()
				return
			}
			d, err := readAllDigest(resp)
			switch {
			case err != nil || resp.StatusCode != http.StatusOK:
				errs <- fmt.Sprintf("status %d, %v", resp.StatusCode, err)
			case d != layer.Digest:
				errs <- "digest " + d
			default:
				errs <- ""
			}
		}()
	}
	for range clients {
		if e := <-errs; e != "" {
			t.Errorf("client: %s", e)
		}
	}
	time.Sleep(200 * time.Millisecond)
	n := 0
	for _, e := range w.reg.RequestsSince(mark) {
		if e.Method == http.MethodGet && strings.HasSuffix(e.Path, "/blobs/"+layer.Digest) {
			n++
		}
	}
	t.Logf("%d concurrent cold pulls over %d replicas: %d upstream blob GETs", clients, len(gates), n)
	if n < 1 || n > len(gates) {
		t.Errorf("%d upstream blob GETs, want 1..%d (at most one per replica)", n, len(gates))
	}

	hx := strings.TrimPrefix(layer.Digest, "sha256:")
	eventually(t, 30*time.Second, "the blob in the bucket", func() (bool, string) {
		fi, err := os.Stat(s3.ObjectFile("trustgate/v1/docker.io/blobs/sha256/" + hx[:2] + "/" + hx))
		return err == nil && fi.Size() == layer.Size, fmt.Sprint(err)
	})
	d := w.gate(t, peers.GateConfig{Extra: store})
	if r := getManifest(t, d, repo, "v1"); r.code != http.StatusOK {
		t.Fatalf("manifest through D: %d", r.code)
	}
	mark = w.reg.Log.Len()
	if r := get(t, http.MethodGet, d.URL+"/v2/"+repo+"/blobs/"+layer.Digest); r.code != http.StatusOK || r.digest() != layer.Digest {
		t.Fatalf("D: %d", r.code)
	}
	time.Sleep(200 * time.Millisecond)
	for _, e := range w.reg.RequestsSince(mark) {
		if strings.Contains(e.Path, "/blobs/") {
			t.Errorf("D asked upstream: %s %s", e.Method, e.Path)
		}
	}
}
