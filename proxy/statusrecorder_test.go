package proxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// readerFromWriter is a ResponseWriter with a ReadFrom, like net/http's.
type readerFromWriter struct {
	*httptest.ResponseRecorder
	readFrom int
}

func (w *readerFromWriter) ReadFrom(src io.Reader) (int64, error) {
	w.readFrom++
	return io.Copy(w.ResponseRecorder.Body, src)
}

// The recorder passes ReadFrom on to the writer it wraps, which is how the blob fan-out's sendfile
// reaches the connection, and copies into a writer that has none.
func TestStatusRecorderReadFrom(t *testing.T) {
	for _, tc := range []struct {
		name         string
		w            http.ResponseWriter
		wantReadFrom bool
	}{
		{"net/http-like writer", &readerFromWriter{ResponseRecorder: httptest.NewRecorder()}, true},
		{"plain writer", httptest.NewRecorder(), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &statusRecorder{ResponseWriter: tc.w, status: http.StatusOK}
			n, err := io.Copy(rec, io.LimitReader(strings.NewReader("spool bytes and more"), 11))
			if err != nil || n != 11 {
				t.Fatalf("copied %d, err %v", n, err)
			}
			var body string
			switch w := tc.w.(type) {
			case *readerFromWriter:
				body = w.Body.String()
				if got := w.readFrom > 0; got != tc.wantReadFrom {
					t.Errorf("ReadFrom of the wrapped writer called: %v, want %v", got, tc.wantReadFrom)
				}
			case *httptest.ResponseRecorder:
				body = w.Body.String()
			}
			if body != "spool bytes" || !rec.wroteHeader {
				t.Errorf("body %q, wroteHeader %v", body, rec.wroteHeader)
			}
		})
	}
}
