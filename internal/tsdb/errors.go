package tsdb

import "errors"

// ErrOverloaded is returned by Append, at once and without writing anything,
// when more samples than Options.MaxPending are already queued for the WAL
// committer. The caller should shed the request (the native protocol answers
// 503) and may retry later.
var ErrOverloaded = errors.New("tsdb: too many samples waiting for the write-ahead log, try again later")

// ErrTimeRange is returned by Append, without writing anything, for a
// sample whose time lies outside [MinTime, MaxTime].
var ErrTimeRange = errors.New("tsdb: sample time out of range")

// ErrClosed is returned by every method that writes once Close has begun.
var ErrClosed = errors.New("tsdb: database is closed")

// ErrLocked is returned by Open when another process (or another DB in this
// process) holds the data directory's LOCK file.
var ErrLocked = errors.New("tsdb: data directory is in use by another process")

// ErrUnknownSeries is returned by Append and Scan for a SeriesRef that
// GetOrCreate never returned.
var ErrUnknownSeries = errors.New("tsdb: unknown series ref")

// ErrCorrupt is wrapped by errors about on-disk data that fails its checksum
// or does not decode, other than a torn WAL tail (which Open truncates and
// reports in the log).
var ErrCorrupt = errors.New("tsdb: corrupt data")
