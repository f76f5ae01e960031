//go:build !unix

package debris

import "io"

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

func lockDir(string) (io.Closer, error) { return nopCloser{}, nil }

// removeUnlocked removes nothing: without a lock a directory in use cannot be told apart.
func removeUnlocked(string) (bool, error) { return false, nil }
