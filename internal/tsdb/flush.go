package tsdb

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// loadSeries loads the series file (framed series records, the WAL's
// format), truncating a torn tail, and opens it for appending.
func (db *DB) loadSeries() error {
	path := filepath.Join(db.dir, seriesName)
	data, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read series index: %w", err)
	}
	n, err := db.idx.loadRecords(data)
	if err != nil {
		return fmt.Errorf("series index %s at offset %d: %w", path, n, err)
	}
	// The series file is appended to, never preallocated: zeros after the
	// records are a torn tail too, and must go before the next append.
	if n < len(data) {
		// Only an interrupted flush leaves a torn tail; the series it was
		// writing are still in the WAL.
		db.logger.Warn("truncating torn series index tail", "path", path, "offset", n, "dropped_bytes", len(data)-n)
		if err := os.Truncate(path, int64(n)); err != nil {
			return fmt.Errorf("truncate series index: %w", err)
		}
	}
	db.seriesN = db.idx.len()
	db.stats.seriesBytes.Store(int64(n))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open series index: %w", err)
	}
	db.seriesF = f
	return nil
}

// persistSeries appends the series created since the last call to the
// series file and fsyncs it. Callers hold flushMu.
func (db *DB) persistSeries() error {
	refs := db.idx.snapshot()
	if len(refs) <= db.seriesN {
		return nil
	}
	var buf []byte
	for _, s := range refs[db.seriesN:] {
		if s != nil {
			buf = appendSeriesRecord(buf, s.ref, s.name, s.labels)
		}
	}
	if db.seriesErr != nil {
		return db.seriesErr
	}
	write := db.seriesF.Write
	if testHookSeriesWrite != nil {
		write = func(b []byte) (int, error) { return testHookSeriesWrite(db.seriesF, b) }
	}
	_, err := write(buf)
	if err == nil {
		if err = db.seriesF.Sync(); err != nil {
			err = fmt.Errorf("sync series index: %w", err)
		}
	} else {
		err = fmt.Errorf("write series index: %w", err)
	}
	if err != nil {
		// Cut what was written, if anything: a partial record would read
		// as a torn tail at the next start, and the whole records
		// appended after it would be cut with it. The next flush writes
		// these series again.
		if terr := db.seriesF.Truncate(db.stats.seriesBytes.Load()); terr != nil {
			db.seriesErr = fmt.Errorf("series index unusable after a failed write (%v): %w", err, terr)
			db.logger.Error("series index write failed and could not be undone; refusing further flushes", "err", db.seriesErr)
		}
		return err
	}
	db.seriesN = len(refs)
	db.stats.seriesBytes.Add(int64(len(buf)))
	return nil
}

// testHookSeriesWrite, when set by a test, writes the series file's new
// records in place of f.Write.
var testHookSeriesWrite func(f *os.File, b []byte) (int, error)

// testHookBeforeManifest, when set by a test, runs after a flush wrote its
// parts and before it writes the manifest; an error fails the flush there.
var testHookBeforeManifest func() error

// Flush writes the whole head into parts now, then deletes the WAL
// segments it covered.
func (db *DB) Flush() error {
	db.closeMu.Lock()
	shut := db.shut
	db.closeMu.Unlock()
	if shut {
		return ErrClosed
	}
	return db.flush()
}

func (db *DB) flush() error { return db.flushWith(nil) }

// flushWith is flush, with the writing of parts paced by pace (nil: at
// full speed).
func (db *DB) flushWith(pace *pacer) error {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	defer db.stats.flushTime.start()()
	start := time.Now()

	// Freeze the head and cut the WAL, between two group commits. The
	// next segment is normally prepared already; if not, wait for it here
	// rather than under commitMu.
	db.commitMu.Lock()
	rotate := db.segOff > 0
	db.commitMu.Unlock()
	if rotate {
		db.waitNextSegment()
	}
	db.qmu.Lock()
	closing := db.closed
	db.qmu.Unlock()
	db.commitMu.Lock()
	if err := db.Err(); err != nil || db.seg == nil {
		db.commitMu.Unlock()
		if err == nil {
			err = ErrClosed
		}
		return err
	}
	n := db.headSamples.Load()
	if n == 0 && db.segOff == 0 && db.walCut == db.segSeq {
		db.commitMu.Unlock()
		return db.persistSeries()
	}
	// The cut: the first segment holding no record of the frozen head. A
	// segment with no record yet is one; else the next.
	cut := db.segSeq
	if db.segOff > 0 {
		cut++
		if err := db.rotateSegment(!closing); err != nil {
			db.commitMu.Unlock()
			return fmt.Errorf("flush: %w", err)
		}
	}
	covered := db.stats.walBytes.Load() // every record before the cut
	db.flushGen++
	gen := db.flushGen
	var frozen []*memSeries
	for _, s := range db.idx.snapshot() {
		if s == nil {
			continue
		}
		s.mu.Lock()
		if s.freezeLocked(gen) > 0 {
			frozen = append(frozen, s)
		}
		s.mu.Unlock()
	}
	db.frozenSamples.Store(n) // first: waitHeadRoom adds them up unlocked
	db.headSamples.Store(0)
	// A signal that the head is full, sent by a commit before this
	// freeze, is answered by this flush: drop it, or the background loop
	// would flush again at once and make a small part of what arrived
	// meanwhile. Commits send under commitMu, so any signal sent from now
	// on is about samples not frozen here.
	select {
	case <-db.flushCh:
	default:
	}
	db.commitMu.Unlock()

	newParts, err := db.writeFrozen(frozen, pace)
	if err == nil {
		err = db.persistSeries()
	}
	if err == nil && testHookBeforeManifest != nil {
		err = testHookBeforeManifest()
	}
	all := append(append([]*part(nil), db.parts.parts...), newParts...)
	sortParts(all)
	if err == nil {
		err = db.writeManifest(all, cut, db.archivedTo)
	}
	if err != nil {
		for _, p := range newParts {
			p.obsolete.Store(true)
			p.decRef()
		}
		db.unfreeze(frozen, gen)
		return fmt.Errorf("flush: %w", err)
	}
	db.viewMu.Lock()
	db.parts = &partSet{parts: all}
	db.published = gen
	db.viewMu.Unlock()
	for _, s := range frozen {
		s.mu.Lock()
		if s.fgen == gen {
			s.releaseFrozenLocked(&db.chunks)
		}
		s.mu.Unlock()
	}
	db.frozenSamples.Store(0)
	// Only now is there room for Appends waiting in waitHeadRoom: a
	// flush that fails puts the head it froze back.
	db.roomMu.Lock()
	close(db.roomCh)
	db.roomCh = make(chan struct{})
	db.roomMu.Unlock()

	db.commitMu.Lock()
	old := db.walCut
	db.walCut = cut
	db.commitMu.Unlock()
	db.stats.walBytes.Add(-covered)
	for seq := old; seq < cut && !db.keepFiles.Load(); seq++ {
		path := segmentPath(db.walDir, seq)
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			// The flush is done and published: the segment, below the
			// manifest's cut, is only disk space, which Open frees.
			db.logger.Warn("cannot remove a flushed WAL segment; the next start removes it", "path", path, "err", err)
		}
	}
	db.stats.flushes.Add(1)
	db.stats.flushed.Add(n)
	db.logger.Debug("flushed head", "samples", n, "series", len(frozen), "parts", len(newParts),
		"duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// unfreeze puts a frozen head back in front of the active head after a
// failed flush. Callers hold flushMu.
func (db *DB) unfreeze(frozen []*memSeries, gen uint64) {
	var n int64
	db.commitMu.Lock() // the committer appends to active heads without s.mu
	defer db.commitMu.Unlock()
	var ts []int64
	var vs []float64
	for _, s := range frozen {
		s.mu.Lock()
		if s.fgen == gen {
			// Frozen samples, then the active ones, appended afresh.
			ts, vs = s.flist.appendRange(ts[:0], vs[:0], 0, s.fn)
			an := s.n.Load()
			l := s.list.Load()
			if an > 0 {
				ts, vs = l.appendRange(ts, vs, 0, an)
				db.chunks.put(l.c[:chunksFor(an)])
				clear(l.c)
			}
			n += s.fn
			s.releaseFrozenLocked(&db.chunks)
			s.fgen = 0
			s.n.Store(0)
			s.unsorted.Store(false)
			s.curT, s.curV = nil, nil
			for i := range ts {
				s.appendHead(ts[i], vs[i], &db.chunks)
			}
		}
		s.mu.Unlock()
	}
	db.headSamples.Add(n)
	db.frozenSamples.Store(0)
}

// partKey names a partition: a kind and a bucket.
type partKey struct {
	kind   uint8
	bucket int64
}

// writeFrozen writes the frozen heads (in ref order) into one new part per
// day and returns the parts, opened.
func (db *DB) writeFrozen(frozen []*memSeries, pace *pacer) ([]*part, error) {
	writers := map[partKey]*partWriter{}
	ids := map[partKey]uint64{}
	abort := func() {
		for _, w := range writers {
			w.abort()
		}
	}
	writer := func(k partKey) (*partWriter, error) {
		if w := writers[k]; w != nil {
			return w, nil
		}
		id := db.allocID()
		size := partBuf
		if len(writers) >= 8 {
			size = partBufSmall
		}
		w, err := createPart(db.partPath(k.kind, k.bucket, id), size)
		if err != nil {
			return nil, err
		}
		writers[k], ids[k] = w, id
		return w, nil
	}
	var fts []int64
	var fvs []float64
	for _, s := range frozen {
		pace.step()
		fts, fvs = s.flist.appendRange(fts[:0], fvs[:0], 0, s.fn)
		ts, vs := fts, fvs
		for len(ts) > 0 {
			d := dayOf(ts[0])
			end := sort.Search(len(ts), func(i int) bool { return dayOf(ts[i]) > d })
			w, err := writer(partKey{kindRaw, d})
			if err == nil {
				err = w.addSeries(s.ref, ts[:end], vs[:end])
			}
			if err != nil {
				abort()
				return nil, err
			}
			ts, vs = ts[end:], vs[end:]
		}
	}
	return db.finishParts(writers, ids, nil)
}

// finishParts completes the writers and opens the parts. seq gives each
// partition's sequence; nil means the part's id.
func (db *DB) finishParts(writers map[partKey]*partWriter, ids map[partKey]uint64, seq map[partKey]uint64) ([]*part, error) {
	var parts []*part
	var firstErr error
	for k, w := range writers {
		if firstErr != nil {
			w.abort()
			continue
		}
		if _, err := w.finish(); err != nil {
			firstErr = err
			continue
		}
		p, err := openPart(w.path)
		if err != nil {
			os.Remove(w.path)
			firstErr = err
			continue
		}
		p.kind, p.bucket, p.id, p.seq = k.kind, k.bucket, ids[k], ids[k]
		if seq != nil {
			p.seq = seq[k]
		}
		parts = append(parts, p)
	}
	// The partition directory and its parents up to the data dir may be
	// new: fsync them all so the part's name persists.
	dirs := map[string]bool{}
	root := filepath.Clean(db.dir)
	for _, p := range parts {
		for d, i := filepath.Dir(p.path), 0; i < 4; d, i = filepath.Dir(d), i+1 {
			dirs[d] = true
			if d == root {
				break
			}
		}
	}
	for d := range dirs {
		if firstErr != nil {
			break
		}
		if err := syncDir(d); err != nil {
			firstErr = fmt.Errorf("sync partition dir: %w", err)
		}
	}
	if firstErr != nil {
		for _, p := range parts {
			p.obsolete.Store(true)
			p.decRef()
		}
		return nil, firstErr
	}
	return parts, nil
}
