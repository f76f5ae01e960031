package fanout

import "syscall"

// diskFree reports the bytes an unprivileged writer may still allocate on
// the filesystem holding dir.
func diskFree(dir string) (int64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return int64(st.Bavail) * st.Bsize, true
}
