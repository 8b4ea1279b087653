// Package tsdb is vigia's metrics store: a write-ahead log with group
// commit, an in-memory head per series, immutable compressed parts in one
// directory per UTC day, and a persisted series index.
//
// Writes go through Append, which returns once the samples are durable in
// the WAL; one committer goroutine batches every pending Append into one
// write and one fdatasync, into preallocated WAL segments. Appended samples are readable by Scan as soon as
// Append returns. The head is flushed into parts when it grows past
// Options.FlushSamples or every Options.FlushInterval; the WAL segments a
// flush covers are then deleted. Background merges combine the small parts
// of a day, and retention drops whole days.
//
// Every sample is kept: two samples of one series at the same millisecond are
// two samples, and Scan returns them in arrival order.
//
// The file layout is described in docs/format/{wal,parts,index}.md.
package tsdb
