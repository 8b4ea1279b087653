package tsdb

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// WAL segments are preallocated: a segment file is created at its full
// size, written with zeros and fsync'd (file and directory) before the
// committer uses it, and records then overwrite the zeros in place. A
// commit is a pwrite at the current offset and an fdatasync, which needs no
// file system metadata (the blocks are allocated and the size does not
// change), so it does not wait for a journal commit, and with it for the
// data of every other file written since (parts). See docs/format/wal.md.

// defaultWALSegmentSize is the size of a preallocated WAL segment. Every
// flush starts a new segment, so each flush costs the writing of one
// segment of zeros: 16 MiB keeps that small next to the parts a flush
// writes, and the disk held by the WAL at 32 MiB (the segment in use and
// the next one).
const defaultWALSegmentSize = 16 << 20

// Segments are zero-filled zeroFillChunk bytes at a time, at most
// zeroFillRate bytes a second unless the committer waits for the segment:
// each chunk is written out before the next, so the disk never has more
// than a chunk of it queued in front of a commit, and each fdatasync of
// the committer (which flushes the disk's cache) carries little of it.
const (
	zeroFillChunk = 256 << 10
	zeroFillRate  = 64 << 20
)

// zeroChunk is what segments are filled with. It is never written to, so
// its pages stay the kernel's shared zero page.
var zeroChunk [1 << 20]byte

// allZero reports whether every byte of b is zero.
func allZero(b []byte) bool {
	for len(b) > 0 {
		n := min(len(b), len(zeroChunk))
		if !bytes.Equal(b[:n], zeroChunk[:n]) {
			return false
		}
		b = b[n:]
	}
	return true
}

// createSegment creates WAL segment seq in dir as size zero bytes: written
// as <name>.tmp one chunk at a time (paced, unless urgent is set), each
// written out before the next, fsync'd, renamed and the directory fsync'd.
// It returns the file open for reading and writing.
func createSegment(dir string, seq uint64, size int64, urgent *atomic.Bool) (*os.File, error) {
	path := segmentPath(dir, seq)
	tmp := path + ".tmp"
	if testHookCreateSegment != nil {
		if err := testHookCreateSegment(seq); err != nil {
			return nil, fmt.Errorf("prepare wal segment %d: %w", seq, err)
		}
	}
	f, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create wal segment %d: %w", seq, err)
	}
	start := time.Now()
	for off := int64(0); off < size && err == nil; off += zeroFillChunk {
		n := min(size-off, zeroFillChunk)
		if _, err = f.WriteAt(zeroChunk[:n], off); err == nil {
			err = writeOut(f, off, n)
		}
		due := start.Add(time.Duration(off+n) * time.Second / zeroFillRate)
		if wait := time.Until(due); wait > 0 && !urgent.Load() {
			time.Sleep(wait)
		}
	}
	if err == nil {
		err = f.Sync()
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("prepare wal segment %d: %w", seq, err)
	}
	return f, nil
}

// segPrep is the preparation of a WAL segment by a background goroutine.
// f and err are set when done is closed.
type segPrep struct {
	seq    uint64
	urgent atomic.Bool // someone waits: zero-fill at full speed
	done   chan struct{}
	f      *os.File
	err    error
}

// wait waits for the preparation to finish, speeding it up.
func (p *segPrep) wait() {
	p.urgent.Store(true)
	<-p.done
}

// prepareSegment starts creating segment seq in the background.
func (db *DB) prepareSegment(seq uint64) *segPrep {
	p := &segPrep{seq: seq, done: make(chan struct{})}
	db.prepWG.Add(1)
	go func() {
		defer db.prepWG.Done()
		defer close(p.done)
		p.f, p.err = createSegment(db.walDir, seq, db.opts.walSegmentSize, &p.urgent)
	}()
	return p
}

// waitNextSegment waits, without holding commitMu, for the preparation of
// the segment after the current one, so that a rotation right after finds
// it ready.
func (db *DB) waitNextSegment() {
	db.commitMu.Lock()
	p := db.prep
	db.commitMu.Unlock()
	if p != nil {
		p.wait()
	}
}

// testHookCreateSegment, when set by a test, runs before a WAL segment is
// created; an error fails the creation, as a full disk would.
var testHookCreateSegment func(seq uint64) error

// segRetryPause is how long, after the next WAL segment could not be
// created, rotateSegment fails at once rather than try again: each attempt
// may write most of a segment of zeros before the disk is found full.
var segRetryPause = time.Second

// rotateSegment makes segment segSeq+1 current. Its preparation started
// when the current segment was opened, so it is normally ready; a failed
// preparation is retried once. If that fails too (a full disk), the
// current segment stays in use and the error is returned; later calls try
// again, at most once every segRetryPause, and the log tells when the
// segment is created after all. Unless prepareNext is false (the DB is
// closing), it starts preparing the segment after it. Callers hold
// commitMu.
func (db *DB) rotateSegment(prepareNext bool) error {
	next := db.segSeq + 1
	if db.segErr != nil && time.Since(db.segErrAt) < segRetryPause {
		return db.segErr
	}
	p := db.prep
	db.prep = nil
	if p != nil {
		p.wait()
		if p.err != nil {
			db.logger.Warn("preparing the next WAL segment failed; retrying", "err", p.err)
		}
	}
	if p == nil || p.err != nil {
		p = db.prepareSegment(next)
		p.wait()
		if p.err != nil {
			if db.segErr == nil {
				db.logger.Error("cannot create the next WAL segment (is the disk full?): writes are refused once the current one is full, until it can be created",
					"err", p.err)
			}
			db.segErr, db.segErrAt = p.err, time.Now()
			return p.err
		}
	}
	if db.segErr != nil {
		db.logger.Info("created the next WAL segment: writes are accepted again", "segment", next)
		db.segErr = nil
	}
	if db.seg != nil {
		db.seg.Close()
	}
	db.seg, db.segSeq, db.segOff = p.f, next, 0
	if prepareNext {
		db.prep = db.prepareSegment(next + 1)
	}
	return nil
}

// writeWAL writes buf at the current offset of the open segment, moving to
// the next segment first if buf does not fit in what is left of this one,
// and returns once it is durable (fdatasync). A batch larger than a whole
// segment extends a fresh segment past its preallocated size. If the next
// segment cannot be created, nothing is written and the log stays usable:
// a later call tries again. A failed write or sync sets the store's permanent error (failWAL): what the
// segment holds is no longer known, and nothing is written after it.
// Callers hold commitMu.
func (db *DB) writeWAL(buf []byte) error {
	if db.segOff > 0 && db.segOff+int64(len(buf)) > db.opts.walSegmentSize {
		if err := db.rotateSegment(true); err != nil {
			return err
		}
	}
	if _, err := db.seg.WriteAt(buf, db.segOff); err != nil {
		return db.failWAL(fmt.Errorf("write wal segment %d: %w", db.segSeq, err))
	}
	if err := fdatasync(db.seg); err != nil {
		return db.failWAL(fmt.Errorf("sync wal segment %d: %w", db.segSeq, err))
	}
	db.segOff += int64(len(buf))
	return nil
}

// failWAL makes err the store's permanent write error and returns it.
// Callers hold commitMu.
func (db *DB) failWAL(err error) error {
	db.walFailed.Store(&err)
	return err
}

// closeSegments closes the open segment and the prepared one, once its
// preparation is done. The committer is stopped or never started.
func (db *DB) closeSegments() {
	db.commitMu.Lock()
	defer db.commitMu.Unlock()
	if db.prep != nil {
		db.prep.urgent.Store(true)
	}
	db.prepWG.Wait()
	if p := db.prep; p != nil && p.f != nil {
		p.f.Close()
	}
	db.prep = nil
	if db.seg != nil {
		db.seg.Close()
		db.seg = nil
	}
}

// readSegment reads the whole file at path into buf, growing it if needed.
func readSegment(path string, buf []byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return buf, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return buf, err
	}
	size := int(st.Size())
	if cap(buf) < size {
		buf = make([]byte, size)
	}
	buf = buf[:size]
	if _, err := io.ReadFull(f, buf); err != nil {
		return buf, err
	}
	return buf, nil
}

// unusedSegment reports whether the segment at path was prepared and never
// written: not empty, and only zeros. Such a segment may follow one that a
// crash tore, since the next segment is prepared while the current one is
// written; any other segment proves that every earlier one was complete.
func unusedSegment(path string) (bool, error) {
	data, err := readSegment(path, nil)
	if err != nil {
		return false, err
	}
	return len(data) > 0 && allZero(data), nil
}

// replayWAL deletes the segments the manifest's walCut covers and any
// preparation a crash interrupted, replays the others in order into the
// index and the head, truncates a torn tail, and opens the segment to
// write next. It returns the records and samples replayed.
func (db *DB) replayWAL() (records, samples int64, err error) {
	ents, err := os.ReadDir(db.walDir)
	if err != nil {
		return 0, 0, fmt.Errorf("list wal: %w", err)
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".wal.tmp") {
			if err := os.Remove(filepath.Join(db.walDir, e.Name())); err != nil {
				return 0, 0, fmt.Errorf("remove unfinished wal segment: %w", err)
			}
		}
	}
	seqs, err := walSegments(db.walDir)
	if err != nil {
		return 0, 0, fmt.Errorf("list wal: %w", err)
	}
	var live []uint64
	for _, s := range seqs {
		if s < db.walCut {
			// Covered by parts: a flush ended before deleting it.
			if err := os.Remove(segmentPath(db.walDir, s)); err != nil {
				return 0, 0, fmt.Errorf("remove flushed wal segment: %w", err)
			}
			continue
		}
		live = append(live, s)
	}
	var data []byte
	var buf []Sample
	type segState struct {
		seq     uint64
		n, size int64 // bytes of intact records, file size
		torn    bool
		unused  bool // preallocated and never written: only zeros
	}
	states := make([]segState, 0, len(live))
	for i, s := range live {
		path := segmentPath(db.walDir, s)
		data, err = readSegment(path, data)
		if err != nil {
			return 0, 0, fmt.Errorf("read wal segment %s: %w", path, err)
		}
		n, err := scanSegment(data, func(typ byte, body []byte) error {
			records++
			var err error
			buf, err = db.replayRecord(typ, body, buf[:0])
			samples += int64(len(buf))
			return err
		})
		st := segState{seq: s, n: int64(n), size: int64(len(data))}
		if err != nil {
			if !errors.Is(err, errTorn) && !errors.Is(err, errChecksum) {
				return 0, 0, fmt.Errorf("replay wal segment %s at offset %d: %w", path, n, err)
			}
			for _, later := range live[i+1:] {
				unused, uerr := unusedSegment(segmentPath(db.walDir, later))
				if uerr != nil {
					return 0, 0, fmt.Errorf("read wal segment: %w", uerr)
				}
				if !unused {
					return 0, 0, fmt.Errorf("%w: wal segment %s: %v at offset %d, and later segments exist", ErrCorrupt, path, err, n)
				}
			}
			db.logger.Warn("truncating torn WAL tail", "segment", path, "offset", n,
				"dropped_bytes", len(data)-n, "reason", err.Error())
			if err := truncateSegment(path, int64(n)); err != nil {
				return 0, 0, fmt.Errorf("truncate torn wal tail: %w", err)
			}
			st.size, st.torn = int64(n), true
			db.stats.torn.Add(1)
		}
		st.unused = n == 0 && len(data) > 0 && !st.torn
		states = append(states, st)
		db.stats.walBytes.Add(int64(n))
	}

	// Where to write next: the last segment with records if it is
	// preallocated and has room left, else the first of the unused
	// segments after it (a crash leaves the one prepared ahead), else a new
	// segment. The unused segment after that is the next one, already
	// prepared; further unused ones (left by repeated crashes) are removed.
	// The segments may hold records the crashed process wrote but did not
	// sync (the last commit's, or those of an earlier crash that a commit
	// in a later segment never covered), which were just replayed: sync
	// every segment with records, and the directory, before anything that
	// depends on them is acknowledged.
	for _, st := range states {
		if st.n == 0 {
			continue
		}
		path := segmentPath(db.walDir, st.seq)
		if err := syncFile(path); err != nil {
			return 0, 0, fmt.Errorf("sync wal segment: %w", err)
		}
		if testHookSyncedSegment != nil {
			testHookSyncedSegment(path)
		}
	}
	if len(states) > 0 {
		if err := syncDir(db.walDir); err != nil {
			return 0, 0, fmt.Errorf("sync wal directory: %w", err)
		}
	}
	k := len(states) - 1
	for k >= 0 && states[k].unused {
		k--
	}
	preallocated := func(st segState) bool { return st.size == db.opts.walSegmentSize && !st.torn }
	var candidates []segState
	if k >= 0 && preallocated(states[k]) && states[k].n < states[k].size {
		candidates = append(candidates, states[k])
	}
	for _, st := range states[k+1:] {
		if len(candidates) < 2 && preallocated(st) && (len(candidates) == 0 || st.seq == candidates[0].seq+1) {
			candidates = append(candidates, st)
			continue
		}
		if err := os.Remove(segmentPath(db.walDir, st.seq)); err != nil {
			return 0, 0, fmt.Errorf("remove unused wal segment: %w", err)
		}
	}
	if len(candidates) == 0 {
		next := db.walCut
		if len(live) > 0 {
			next = max(next, live[len(live)-1]+1)
		}
		return records, samples, db.createFirstSegment(next)
	}
	files := make([]*os.File, len(candidates))
	for i, st := range candidates {
		f, err := os.OpenFile(segmentPath(db.walDir, st.seq), os.O_RDWR, 0)
		if err != nil {
			for _, f := range files[:i] {
				f.Close()
			}
			return 0, 0, fmt.Errorf("open wal segment: %w", err)
		}
		files[i] = f
	}
	db.seg, db.segSeq, db.segOff = files[0], candidates[0].seq, candidates[0].n
	if len(files) == 2 {
		db.prep = &segPrep{seq: candidates[1].seq, done: make(chan struct{}), f: files[1]}
		close(db.prep.done)
	} else {
		db.prep = db.prepareSegment(db.segSeq + 1)
	}
	return records, samples, nil
}

// replayRecord applies one WAL record to the index and the head. It returns
// the samples of a samples record, appended to buf.
func (db *DB) replayRecord(typ byte, body []byte, buf []Sample) ([]Sample, error) {
	switch typ {
	case recSeries:
		return buf, db.idx.addRecord(body)
	case recSamples:
		buf, err := decodeSamplesRecord(body, buf)
		if err != nil {
			return buf[:0], err
		}
		db.applySamples([][]Sample{buf})
		return buf, nil
	}
	return buf, fmt.Errorf("%w: wal record type %d", ErrCorrupt, typ)
}

// createFirstSegment creates segment seq, waiting for it, makes it current
// and starts preparing the next one.
func (db *DB) createFirstSegment(seq uint64) error {
	var urgent atomic.Bool
	urgent.Store(true)
	f, err := createSegment(db.walDir, seq, db.opts.walSegmentSize, &urgent)
	if err != nil {
		return err
	}
	db.seg, db.segSeq, db.segOff = f, seq, 0
	db.prep = db.prepareSegment(seq + 1)
	return nil
}

// testHookSyncedSegment, when set by a test, is told each WAL segment
// Open syncs after replaying it.
var testHookSyncedSegment func(path string)

// syncFile fsyncs the file at path.
func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// truncateSegment cuts the file at path to size and fsyncs it.
func truncateSegment(path string, size int64) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Truncate(size)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
