package tsdb

import (
	"errors"
	"fmt"
	"sync"
	"time"
)

// commitLoop is the single WAL committer.
func (db *DB) commitLoop() {
	defer db.wg.Done()
	for {
		select {
		case <-db.notify:
			db.commitOnce()
		case <-db.quit:
			for db.commitOnce() {
			}
			return
		}
	}
}

// commitOnce writes and syncs everything queued, applies it to the head
// and releases the waiters. It reports whether there was anything.
func (db *DB) commitOnce() bool {
	db.qmu.Lock()
	b := db.cur
	if len(b.buf) == 0 {
		db.qmu.Unlock()
		return false
	}
	db.cur = &commitBatch{done: make(chan struct{}), buf: db.spareBuf[:0]}
	db.spareBuf = nil
	db.pending = 0
	db.qmu.Unlock()

	db.commitMu.Lock()
	err := db.Err()
	unwritten := false
	if err == nil {
		err = db.writeWAL(b.buf)
		switch {
		case err == nil:
			db.stats.walBytes.Add(int64(len(b.buf)))
			db.stats.commits.Add(1)
			db.applySamples(b.appends)
		case db.Err() != nil:
			db.logger.Error("WAL write failed; refusing further writes until a restart", "err", err)
		default:
			unwritten = true // no room for the next segment (rotateSegment logs it)
		}
	}
	db.commitMu.Unlock()
	if unwritten {
		db.requeueSeries(b.buf)
	}
	b.err = err
	close(b.done)

	clear(b.appends)
	if cap(b.buf) <= 16<<20 {
		db.qmu.Lock()
		db.spareBuf = b.buf[:0]
		db.qmu.Unlock()
	}
	return true
}

// requeueSeries puts the series records of buf, a batch the committer
// could not write, in front of the next batch. Their series are in the
// index already, so the samples appended to them later come without a
// series record of their own, and replay would skip them if it found none
// earlier in the log. After Close has begun they are dropped: no sample can
// follow them, and the committer must not find them pending for ever.
func (db *DB) requeueSeries(buf []byte) {
	var recs []byte
	for off := 0; off < len(buf); {
		typ, _, n, err := readFrame(buf[off:])
		if err != nil {
			break // the committer framed buf itself: not reached
		}
		if typ == recSeries {
			recs = append(recs, buf[off:off+n]...)
		}
		off += n
	}
	if len(recs) == 0 {
		return
	}
	db.qmu.Lock()
	if !db.closed {
		db.cur.buf = append(recs, db.cur.buf...)
	}
	db.qmu.Unlock()
}

// MinTime and MaxTime bound the sample times Append accepts, in unix
// milliseconds: about 146 million years either side of 1970. Within them
// the arithmetic of windows and partitions cannot overflow, and a Scan up
// to math.MaxInt64, which it leaves out, finds every sample.
const (
	MinTime int64 = -1 << 62
	MaxTime int64 = 1<<62 - 1
)

// maxRecordSamples bounds the samples of one WAL record: at most 29 bytes
// each, a record stays far below walMaxRecord, which replay trusts. A
// larger Append is written as several records, in one commit.
var maxRecordSamples = 1 << 20

var encPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// Append adds samples to their series. It returns only after the samples
// are durable in the WAL (synced by the group committer); they are then
// readable by Scan. Samples may be in any time order, and duplicates are
// kept. It returns ErrOverloaded at once when too many samples are queued,
// ErrUnknownSeries for a ref GetOrCreate never returned, ErrTimeRange for a
// time outside [MinTime, MaxTime], and ErrClosed after Close, storing none
// of the samples. Append does not keep samples after it returns.
func (db *DB) Append(samples []Sample) error {
	if len(samples) == 0 {
		return nil
	}
	if err := db.waitHeadRoom(); err != nil {
		return err
	}
	// Refs below the highest may have no series (maxRefHoles): their
	// samples would be acknowledged and then skipped.
	refs := db.idx.snapshot()
	for _, s := range samples {
		if seriesAt(refs, s.Ref) == nil {
			return fmt.Errorf("%w: %d", ErrUnknownSeries, s.Ref)
		}
		if s.T < MinTime || s.T > MaxTime {
			return fmt.Errorf("%w: %d", ErrTimeRange, s.T)
		}
	}
	bp := encPool.Get().(*[]byte)
	rec := (*bp)[:0]
	for rest := samples; len(rest) > 0; {
		n := min(len(rest), maxRecordSamples)
		rec = appendSamplesRecord(rec, rest[:n])
		rest = rest[n:]
	}
	db.qmu.Lock()
	if db.closed {
		db.qmu.Unlock()
		encPool.Put(bp)
		return ErrClosed
	}
	if db.pending > 0 && db.pending+len(samples) > db.opts.MaxPending {
		db.qmu.Unlock()
		encPool.Put(bp)
		return ErrOverloaded
	}
	b := db.cur
	b.buf = append(b.buf, rec...)
	b.appends = append(b.appends, samples)
	db.pending += len(samples)
	db.qmu.Unlock()
	if cap(rec) <= 1<<20 {
		*bp = rec
		encPool.Put(bp)
	}
	select {
	case db.notify <- struct{}{}:
	default:
	}
	<-b.done
	if b.err == nil {
		db.stats.appended.Add(int64(len(samples)))
	}
	return b.err
}

// headRoomWait bounds how long Append waits for a flush to make room.
var headRoomWait = 5 * time.Second

// waitHeadRoom waits while the head, with the part of it a flush is
// writing (which a failed flush puts back), holds 4 x FlushSamples or more.
func (db *DB) waitHeadRoom() error {
	limit := 4 * int64(db.opts.FlushSamples)
	if db.headSamples.Load()+db.frozenSamples.Load() < limit {
		return nil
	}
	timer := time.NewTimer(headRoomWait)
	defer timer.Stop()
	for {
		db.roomMu.Lock()
		ch := db.roomCh
		db.roomMu.Unlock()
		if db.headSamples.Load()+db.frozenSamples.Load() < limit {
			return nil
		}
		select {
		case db.flushCh <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-timer.C:
			return ErrOverloaded
		case <-db.quit:
			return ErrClosed
		}
	}
}

// GetOrCreate returns the ref of the series with this name and labels,
// creating it if needed. It does not allocate when the series exists. A new
// series is written to the WAL before any sample that references it.
func (db *DB) GetOrCreate(name []byte, labels []Label) (SeriesRef, error) {
	if s := db.idx.lookup(name, labels); s != nil {
		return s.ref, nil
	}
	if len(name) == 0 {
		return 0, errors.New("tsdb: empty series name")
	}
	ls := append([]Label(nil), labels...)
	sortLabels(ls)
	db.idx.mu.Lock()
	defer db.idx.mu.Unlock()
	db.qmu.Lock()
	defer db.qmu.Unlock()
	if db.closed {
		return 0, ErrClosed
	}
	s, created := db.idx.addLocked(SeriesRef(len(db.idx.byRef)+1), string(name), ls)
	if created {
		db.cur.buf = appendSeriesRecord(db.cur.buf, s.ref, s.name, s.labels)
		select {
		case db.notify <- struct{}{}:
		default:
		}
	}
	return s.ref, nil
}
