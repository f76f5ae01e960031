package bench

import (
	"bytes"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The link delivers every byte unchanged, small responses on a kept-alive connection without
// waiting for more, and never faster than its rate: a lower bound on the time, which load on
// the machine can only lengthen, not a speed assertion.
func TestLink(t *testing.T) {
	big := make([]byte, 4<<20)
	rand.NewChaCha8([32]byte{1}).Read(big)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/small" {
			w.Write([]byte("ok"))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(big)))
		w.Write(big)
	}))
	defer srv.Close()

	const bits = 64e6 // 8 MB/s
	l, err := StartLink(strings.TrimPrefix(srv.URL, "http://"), bits)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	client := &http.Client{Transport: &http.Transport{}}
	defer client.CloseIdleConnections()

	get := func(path string) []byte {
		t.Helper()
		resp, err := client.Get(l.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for range 3 {
		if b := get("/small"); string(b) != "ok" {
			t.Fatalf("small response %q", b)
		}
	}
	t0 := time.Now()
	if b := get("/big"); !bytes.Equal(b, big) {
		t.Fatalf("big response: %d bytes, not what the server sent", len(b))
	}
	// The bucket starts full; everything else waits for tokens.
	floor := time.Duration(float64(len(big)-l.lim.Burst()) / (bits / 8) * float64(time.Second))
	if took := time.Since(t0); took < floor {
		t.Errorf("%d bytes took %v through a %v bit/s link, faster than its rate allows (%v)", len(big), took, bits, floor)
	}
}
