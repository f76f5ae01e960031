package blobstore

import (
	"cmp"
	"context"
	"slices"
	"strings"
	"time"

	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
)

// SweepResult is what one Sweep found and did.
type SweepResult struct {
	Blobs, Bytes     int64 // stored after the sweep
	Deleted          int   // blobs deleted (age or size)
	DeletedBytes     int64
	AbandonedUploads int
}

// Run sweeps every SweepInterval until ctx ends.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(s.opts.SweepInterval)
	defer t.Stop()
	for {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("blob store sweep failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type object struct {
	path string
	size int64
	mod  time.Time
}

// Sweep deletes blobs stored longer ago than MaxAge, then the oldest until the rest fit
// MaxBytes, and uploads abandoned longer than an hour ago.
func (s *Store) Sweep(ctx context.Context) (SweepResult, error) {
	var res SweepResult
	now := s.opts.Now()
	var blobs, uploads []object
	err := s.driver.Walk(ctx, root, func(fi storagedriver.FileInfo) error {
		if fi.IsDir() {
			return nil
		}
		o := object{path: fi.Path(), size: fi.Size(), mod: fi.ModTime()}
		switch {
		case strings.HasPrefix(o.path, uploadsDir+"/"):
			uploads = append(uploads, o)
		case strings.Contains(o.path, "/blobs/"):
			blobs = append(blobs, o)
		}
		return nil
	})
	switch {
	case isNotFound(err):
		err = nil // nothing stored yet
	case err != nil:
		return res, s.failed("walk", err)
	}
	del := func(o object) bool {
		dctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
		defer cancel()
		if err := s.driver.Delete(dctx, o.path); err != nil && !isNotFound(err) {
			s.failed("delete", err)
			return false
		}
		return true
	}
	for _, o := range uploads {
		if now.Sub(o.mod) > staleUpload && del(o) {
			res.AbandonedUploads++
		}
	}
	// Oldest first; the path breaks ties so every replica picks the same victims.
	slices.SortFunc(blobs, func(a, b object) int {
		return cmp.Or(a.mod.Compare(b.mod), strings.Compare(a.path, b.path))
	})
	var total int64
	for _, o := range blobs {
		total += o.size
	}
	for _, o := range blobs {
		old := s.opts.MaxAge > 0 && now.Sub(o.mod) > s.opts.MaxAge
		over := s.opts.MaxBytes > 0 && total > s.opts.MaxBytes
		if !old && !over {
			break // sorted: every later blob is younger, and the total fits
		}
		if !del(o) {
			continue
		}
		total -= o.size
		res.Deleted++
		res.DeletedBytes += o.size
		s.m.evictions.Inc()
	}
	res.Blobs, res.Bytes = int64(len(blobs)-res.Deleted), total
	s.m.storedBytes.Set(float64(total))
	if res.Deleted > 0 || res.AbandonedUploads > 0 {
		s.log.Info("blob store swept", "deleted", res.Deleted, "deleted_bytes", res.DeletedBytes,
			"abandoned_uploads", res.AbandonedUploads, "blobs", res.Blobs, "bytes", res.Bytes)
	}
	return res, nil
}
