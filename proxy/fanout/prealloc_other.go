//go:build !linux

package fanout

import "os"

// preallocate is a no-op where there is no fallocate; see prealloc_linux.go.
func preallocate(*os.File, int64) error { return nil }
