package fanout

import "context"

type sizeKey struct{}

// WithSize returns a context that tells Serve the blob's size as the caller knows it from a
// verified source, such as the descriptor in a manifest whose digest was checked. A download
// started by a request with this context trusts that size, not upstream's: an upstream
// announcing another size fails the download with ErrSizeMismatch before anything is reserved
// or sent, a body without a length is read no further than n bytes (ErrTooLong), and n bytes of
// spool are reserved at once.
//
// Without it the size upstream announces is upstream's word alone, so a download reserves no
// more of it ahead of the bytes than MaxSpoolBytes has free, and evicts no retained spool for
// it: a lying Content-Length can neither fill the disk nor flush the retained blobs. (The bytes
// themselves still take the room they take as they arrive.)
func WithSize(ctx context.Context, n int64) context.Context {
	return context.WithValue(ctx, sizeKey{}, n)
}

func sizeFrom(ctx context.Context) (int64, bool) {
	n, ok := ctx.Value(sizeKey{}).(int64)
	return n, ok && n >= 0
}

// reservation is how much spool a download of size bytes reserves before its bytes arrive.
func (g *Group) reservation(size int64, verified bool) int64 {
	if verified || size <= 0 {
		return size
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return min(size, max(0, g.keep.max-g.keep.bytes))
}
