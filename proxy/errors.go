package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// apiError is a registry error response. The status is carried separately from the errcode because
// trustgate sometimes answers with a status the code's descriptor doesn't default to (e.g. an
// unknown route is a 404 with UNSUPPORTED).
type apiError struct {
	status int
	code   errcode.ErrorCode
	msg    string
	// header is copied to the response; used for Retry-After on TOOMANYREQUESTS.
	header http.Header
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s: %s", e.status, e.code, e.msg) }

func newError(code errcode.ErrorCode, format string, args ...any) *apiError {
	return &apiError{status: code.Descriptor().HTTPStatusCode, code: code, msg: fmt.Sprintf(format, args...)}
}

func errUnavailable(format string, args ...any) *apiError {
	return newError(errcode.ErrorCodeUnavailable, format, args...)
}

// writeError answers with a registry JSON error body. HEAD responses carry the status and headers
// only: clients never read a HEAD body, and a body would violate HTTP.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{status: http.StatusInternalServerError, code: errcode.ErrorCodeUnknown, msg: err.Error()}
	}
	h := w.Header()
	for k, v := range ae.header {
		h[k] = v
	}
	h.Set("Content-Type", "application/json")
	h.Del("Content-Length")
	if r.Method == http.MethodHead {
		w.WriteHeader(ae.status)
		return
	}
	body, _ := json.Marshal(errcode.Errors{ae.code.WithMessage(ae.msg)})
	body = append(body, '\n')
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(ae.status)
	_, _ = w.Write(body)
}
