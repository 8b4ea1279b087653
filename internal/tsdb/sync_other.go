//go:build unix && !linux

package tsdb

import "os"

// fdatasync is fsync where the system has no fdatasync.
func fdatasync(f *os.File) error { return f.Sync() }

// writeOut does nothing where the system has no sync_file_range: the final
// fsync writes the whole segment out.
func writeOut(f *os.File, off, n int64) error { return nil }
