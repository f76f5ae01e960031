package proxy

import (
	"io"
	"net/http"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/gorilla/mux"
)

// name matches a repository name of any number of segments; the regexp is greedy, so the route
// keyword (manifests, blobs, ...) is the LAST one in the path, as the distribution spec requires.
// Names are validated against the reference grammar by locate, not by the route.
const namePat = "{name:.+}"

func (s *Server) routes() http.Handler {
	r := mux.NewRouter()
	// No path cleaning: a cleaned path would be answered with a redirect, and registry clients
	// don't expect one; invalid names are refused by validation instead.
	r.SkipClean(true)
	read := []string{http.MethodGet, http.MethodHead}
	r.Handle("/v2/", s.instrument("base", http.HandlerFunc(handleBase))).Methods(read...)
	r.Handle("/v2", s.instrument("base", http.HandlerFunc(handleBase))).Methods(read...)
	r.Handle("/v2/"+namePat+"/manifests/{reference}", s.instrument("manifests", http.HandlerFunc(s.handleManifest))).Methods(read...)
	r.Handle("/v2/"+namePat+"/blobs/{digest}", s.instrument("blobs", http.HandlerFunc(s.handleBlob))).Methods(read...)
	r.Handle("/v2/"+namePat+"/tags/list", s.instrument("tags", http.HandlerFunc(s.handleTags))).Methods(http.MethodGet)
	r.Handle("/v2/"+namePat+"/referrers/{digest}", s.instrument("referrers", http.HandlerFunc(s.handleReferrers))).Methods(http.MethodGet)
	r.MethodNotAllowedHandler = s.instrument("unsupported", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// trustgate is a read-only mirror: pushes, deletes and uploads are not part of it.
		writeError(w, r, newError(errcode.ErrorCodeUnsupported, "%s is not supported: trustgate is a read-only registry", echo(r.Method)))
	}))
	r.NotFoundHandler = s.instrument("notfound", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e := newError(errcode.ErrorCodeUnsupported, "%s is not supported: trustgate is a read-only registry", echo(r.Method))
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			e = newError(errcode.ErrorCodeUnsupported, "no registry API at %s", echo(r.URL.Path))
			e.status = http.StatusNotFound
		}
		writeError(w, r, e)
	}))
	return r
}

func handleBase(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", "2")
	if r.Method != http.MethodHead {
		_, _ = w.Write([]byte("{}"))
	}
}

// instrument sets the API version header every registry response carries and counts the request.
func (s *Server) instrument(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(rec.status)).Inc()
	})
}

// statusRecorder remembers the status code. Unwrap lets http.ResponseController (used by the
// fan-out for deadlines and flushing) reach the real writer.
type statusRecorder struct {
	http.ResponseWriter
	status      int
	wroteHeader bool
}

func (r *statusRecorder) WriteHeader(code int) {
	if !r.wroteHeader {
		r.status, r.wroteHeader = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	r.wroteHeader = true
	return r.ResponseWriter.Write(p)
}

func (r *statusRecorder) Flush() {
	r.wroteHeader = true
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// ReadFrom passes net/http's ReadFrom through, so the fan-out's io.Copy from a spool file reaches
// *net.TCPConn and goes out with sendfile instead of through a buffer.
func (r *statusRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.wroteHeader = true
	if rf, ok := r.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(src)
	}
	return io.Copy(struct{ io.Writer }{r.ResponseWriter}, src)
}

func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
