//go:build linux

package tsdb

import (
	"os"
	"syscall"
)

// The standard library's syscall package has Fdatasync and SyncFileRange
// (golang.org/x/sys/unix would do as well, but is only an indirect
// dependency); these are the flags of sync_file_range(2).
const (
	syncFileRangeWaitBefore = 1
	syncFileRangeWrite      = 2
	syncFileRangeWaitAfter  = 4
)

// fdatasync flushes f's data, and only the metadata needed to read it back,
// to stable storage. On a preallocated WAL segment overwritten in place
// that is no metadata at all: no journal commit.
func fdatasync(f *os.File) error {
	return control(f, "fdatasync", func(fd int) error {
		return syscall.Fdatasync(fd)
	})
}

// writeOut writes the dirty pages of f in [off, off+n) to the disk and
// waits for them, without syncing metadata or the disk's cache: a WAL
// segment being zero-filled goes out in small steps, so that the disk queue
// never holds much of it in front of the committer's writes.
func writeOut(f *os.File, off, n int64) error {
	return control(f, "sync_file_range", func(fd int) error {
		return syscall.SyncFileRange(fd, off, n,
			syncFileRangeWaitBefore|syncFileRangeWrite|syncFileRangeWaitAfter)
	})
}

// control runs fn on f's descriptor, retrying on EINTR.
func control(f *os.File, op string, fn func(fd int) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	if cerr := rc.Control(func(fd uintptr) {
		for {
			if err = fn(int(fd)); err != syscall.EINTR {
				return
			}
		}
	}); cerr != nil {
		return cerr
	}
	if err != nil {
		return &os.PathError{Op: op, Path: f.Name(), Err: err}
	}
	return nil
}
