// Package fanout streams a blob from upstream to any number of concurrent
// clients with one upstream download, memory that does not grow with the
// blob, and the digest checked while streaming.
//
// # How it works
//
// The first request for a digest starts a download: a goroutine copies the
// upstream body into an unlinked spool file and publishes how many bytes it
// has written, while a second one hashes the same buffers. Every request (the
// first one included) tails the spool up to the published offset: over plain
// HTTP/1 with sendfile(2) from a file description of its own (io.Copy of an
// io.LimitedReader of the spool to the ResponseWriter, whose ReadFrom hands
// it to *net.TCPConn), otherwise (TLS, HTTP/2) through one buffer of fixed
// size. Requests for the same digest while the download runs join it instead
// of going upstream.
//
// # Verification
//
// Every response holds back its own last byte until the download has
// finished and the whole blob hashed to the requested digest: the blob's last
// byte for a full GET, the range's last byte for a Range request. If upstream
// sends the wrong bytes, fewer or more bytes than it announced, or fails,
// every response under way is aborted with http.ErrAbortHandler: clients see
// a reset connection and a short body against Content-Length, never a
// complete response with a wrong byte, whichever bytes they asked for. A
// request whose headers are not yet out gets Options.OnError instead (502 by
// default).
//
// A range streams as soon as its bytes are in the spool, but completes only
// when the whole blob is verified. For a small range at the head of a cold
// blob that is the time to download the blob rather than the range:
// BenchmarkRangeHeadCold measured 2 KiB at the head of a 1 GiB blob over
// loopback complete in 0.85-1.5 s instead of 6 ms (64 MiB: 50-110 ms instead
// of 4-5 ms; the spread is the load of a shared 2-core machine), while its
// first byte still arrives within 2-4 ms.
// Ranges of a retained, verified spool are served at once. Lazy-pull clients
// (zstd:chunked, nydus) that fetch many small ranges of a cold layer thus
// wait for the layer's download once, after which every range is immediate
// while the spool is retained (MaxSpoolBytes 0 retains none: every range
// then waits for a download of its own); see docs/blobs.md.
//
// # Policies
//
//   - Clients gone: the download continues to completion (bounded by
//     IdleTimeout without upstream bytes). A client that disconnects usually
//     retries or resumes with Range at once; finishing lets that retry join the
//     download in flight or hit the retained spool instead of starting over
//     upstream, which is the point of a pull-through cache.
//   - Unknown size: an Opener that reports size -1 (no Content-Length) makes
//     every request wait until the blob is fully spooled and verified, then it
//     is served with an exact Content-Length. Clients rely on Content-Length
//     for progress and truncation checks, and nothing unverified is sent.
//   - Range: one "bytes=a-b", "bytes=a-" or "bytes=-n" is answered with 206
//     and Content-Range (Docker needs 206 for resumes; containerd needs the
//     answer to be consistent); an unsatisfiable one with 416 RANGE_INVALID;
//     several ranges, another unit or bad syntax with 200 and the whole blob.
//     A range on a cold blob starts the full download and is served from it.
//   - Retention: verified spools are kept open in a byte-bounded LRU
//     (Options.MaxSpoolBytes, 0 = none) so a second pull right after is served
//     without upstream. In-flight downloads are not refused when the budget is
//     exceeded; retained spools are evicted to make room for them.
//   - Sizes: a size the caller knows from a verified source (WithSize) is
//     the blob's size; upstream must announce it or none. A size only
//     upstream announces is reserved ahead of the bytes no further than
//     MaxSpoolBytes has free, so a lying Content-Length cannot fill the disk
//     or flush retained spools.
//   - Disk: a download of known size also evicts retained spools, oldest
//     first, until the spool filesystem's free space (statfs) holds its
//     reservation, and
//     a create, reservation or write that still hits ENOSPC evicts the next
//     oldest and retries. A missing spool directory is recreated. What cannot
//     be fixed that way (read-only, unwritable, full of other files) fails
//     the download with ErrSpool naming the reason, 503 by default; no
//     failed state is kept, so the next request succeeds once the disk does.
package fanout

import (
	// The digest algorithms go-digest resolves must be linked in.
	_ "crypto/sha256"
	_ "crypto/sha512"
)
