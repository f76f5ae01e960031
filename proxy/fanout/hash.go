package fanout

import "hash"

// Hashing runs beside the fetcher rather than inside it because it is the
// most expensive step of a download: SHA-256 costs about as much per byte as
// the socket read and the spool write together. Done in line, read, hash and
// write took turns on one goroutine, which made it the bottleneck of every
// cold pull (the profile of `make bench` had it at 63% of the process while
// the second core had spare time). Handed off, the hash keeps one core busy
// while the read and the spool write overlap with it on the other, and
// readers see bytes as soon as they are spooled.
//
// Verification is unchanged: readers may send spooled bytes before they are
// hashed, as before they could send bytes hashed but not yet verified, and
// the last byte of the blob is still held back until every byte was hashed
// and the digest compared (fill waits for the hasher before its verdict).

// hashBufs is the most copy buffers a download cycles through: one being
// read into, the others queued for or in the hasher. Memory per download is
// at most hashBufs*copyBufSize, whatever the blob size; fewer than 4 measured
// slower. Buffers are allocated only when the fetcher would otherwise wait for
// the hasher, so a download from an upstream slower than the hash (most of
// them, over the internet) keeps to one or two.
const hashBufs = 4

// pipeHasher hashes buffers in the order they are handed over, on its own
// goroutine, and hands each buffer back once it is hashed.
type pipeHasher struct {
	h       hash.Hash
	in      chan []byte
	free    chan []byte
	done    chan struct{}
	bufSize int
	bufs    int // allocated so far
	closed  bool
}

func newPipeHasher(h hash.Hash, bufSize int) *pipeHasher {
	p := &pipeHasher{
		h:       h,
		in:      make(chan []byte, hashBufs),
		free:    make(chan []byte, hashBufs),
		done:    make(chan struct{}),
		bufSize: bufSize,
	}
	go p.run()
	return p
}

func (p *pipeHasher) run() {
	defer close(p.done)
	for b := range p.in {
		p.h.Write(b)
		p.free <- b[:cap(b)]
	}
}

// buffer returns a buffer to read into. It waits for the hasher when every
// buffer is queued, which is what bounds memory and keeps the fetcher from
// running further ahead of the hash than hashBufs buffers.
func (p *pipeHasher) buffer() []byte {
	select {
	case b := <-p.free:
		return b
	default:
	}
	if p.bufs < hashBufs {
		p.bufs++
		return make([]byte, p.bufSize)
	}
	return <-p.free
}

// hash queues b to be hashed after everything queued before. The caller
// must not modify b afterwards (reading it, e.g. to write the spool, is
// fine) and must not use it again before buffer returns it.
func (p *pipeHasher) hash(b []byte) { p.in <- b }

// recycle returns a buffer that was not handed to hash.
func (p *pipeHasher) recycle(b []byte) { p.free <- b[:cap(b)] }

// sum waits for every queued buffer to be hashed and returns the hash. The
// pipeHasher must not be used afterwards.
func (p *pipeHasher) sum() hash.Hash {
	p.close()
	return p.h
}

// close stops the hasher goroutine once it has drained its queue; it is
// safe to call more than once.
func (p *pipeHasher) close() {
	if !p.closed {
		p.closed = true
		close(p.in)
	}
	<-p.done
}
