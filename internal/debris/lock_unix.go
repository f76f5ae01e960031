//go:build unix

package debris

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// lockDir holds an exclusive flock(2) on dir itself; the kernel drops it when the process ends,
// however it ends.
func lockDir(dir string) (io.Closer, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking %s: %w", dir, err)
	}
	return f, nil
}

// removeUnlocked removes the directory at path if its lock can be taken, holding the lock while
// it does.
func removeUnlocked(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return false, nil // in use
	}
	if err != nil {
		return false, fmt.Errorf("locking %s: %w", path, err)
	}
	if err := os.RemoveAll(path); err != nil {
		return false, err
	}
	return true, nil
}
