package fanout

import "errors"

// These errors describe why a download failed. They are wrapped with context
// and handed to Options.OnError (when no byte was sent yet) and to the log, so
// callers can tell an upstream that lies from one that is merely unreachable.
var (
	// ErrDigestMismatch means upstream sent exactly the announced number of
	// bytes but they do not hash to the requested digest.
	ErrDigestMismatch = errors.New("fanout: blob digest mismatch")
	// ErrTruncated means upstream ended the body before the announced size.
	ErrTruncated = errors.New("fanout: upstream body shorter than its size")
	// ErrTooLong means upstream sent more bytes than the size it announced.
	ErrTooLong = errors.New("fanout: upstream body longer than its size")
	// ErrSizeMismatch means upstream announced a size other than the one
	// the caller knows from a verified source (see WithSize).
	ErrSizeMismatch = errors.New("fanout: upstream size differs from the verified size")
	// ErrIdle means upstream sent no byte for Options.IdleTimeout.
	ErrIdle = errors.New("fanout: upstream idle timeout")
	// ErrSpool means the spool directory cannot take the blob: it is
	// missing and cannot be recreated, unwritable, read-only, or full even
	// after every retained spool was evicted. The error names the reason
	// (the errno), not the path, which only the log carries. Nothing is
	// remembered: the next request tries again.
	ErrSpool = errors.New("fanout: blob spool unavailable")
	// ErrClosed means the Group was closed while the download ran.
	ErrClosed = errors.New("fanout: group closed")
)
