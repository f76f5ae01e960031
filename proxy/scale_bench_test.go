package proxy

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/trustgate/trustgate/internal/tuftest"
)

// BenchmarkScaleTagsList: GET /v2/<name>/tags/list in enforce mode on a repository of N signed
// tags, the whole list and one page of 100 from the middle (scale section of `make bench`).
func BenchmarkScaleTagsList(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("tags=%d", n), func(b *testing.B) {
			s := benchServer(b, "http://127.0.0.1:1", func(r *tuftest.Repo) { // never dialled
				for i := range n {
					r.AddTargetDigest("targets", fmt.Sprintf("tag-%07d", i), fmt.Sprintf("%064x", i), 1)
				}
			})
			for _, tc := range []struct{ name, query string }{
				{"full", ""},
				{"page", fmt.Sprintf("?n=100&last=tag-%07d", n/2)},
			} {
				b.Run(tc.name, func(b *testing.B) {
					get := func() *httptest.ResponseRecorder {
						r := httptest.NewRequestWithContext(context.Background(), http.MethodGet, "/v2/library/bench/tags/list"+tc.query, nil)
						w := httptest.NewRecorder()
						s.ServeHTTP(w, r)
						return w
					}
					if w := get(); w.Code != http.StatusOK {
						b.Fatalf("%d %s", w.Code, w.Body)
					}
					b.ReportAllocs()
					for b.Loop() {
						get()
					}
				})
			}
		})
	}
}
