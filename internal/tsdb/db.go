package tsdb

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Options configures a DB. A nil *Options or a zero field means the default.
type Options struct {
	Logger *slog.Logger
	// FlushSamples: flush the head into parts, in the background, when it
	// holds this many samples. Default 4 Mi. Should the head reach 4 times
	// this (flushes falling behind or failing), Append waits up to 5 s for
	// a flush to make room and then returns ErrOverloaded.
	FlushSamples int
	// FlushInterval: flush the head at least this often. Default 10m.
	FlushInterval time.Duration
	// RawRetention: whole day partitions older than this are dropped.
	// Default 240h (10 days).
	RawRetention time.Duration
	// MaxPending bounds the samples queued for the WAL committer; beyond it
	// Append returns ErrOverloaded at once. Default 2 Mi.
	MaxPending int
	// Now returns the current time, for retention. Default time.Now.
	Now func() time.Time
	// MergeInterval: how often background merges and retention run.
	// Default 1m.
	MergeInterval time.Duration
	// Retention of the 1-minute, 1-hour and 1-day archives. Defaults 90,
	// 558 and 3650 days.
	Retention1m, Retention1h, Retention1d time.Duration
}

// retention returns how long parts of a kind are kept.
func (o *Options) retention(kind uint8) time.Duration {
	switch kind {
	case kind1m:
		return o.Retention1m
	case kind1h:
		return o.Retention1h
	case kind1d:
		return o.Retention1d
	}
	return o.RawRetention
}

func (o *Options) withDefaults() Options {
	var r Options
	if o != nil {
		r = *o
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
	r.Logger = r.Logger.With("component", "tsdb")
	if r.FlushSamples <= 0 {
		r.FlushSamples = 4 << 20
	}
	if r.FlushInterval <= 0 {
		r.FlushInterval = 10 * time.Minute
	}
	if r.RawRetention <= 0 {
		r.RawRetention = 240 * time.Hour
	}
	if r.MaxPending <= 0 {
		r.MaxPending = 2 << 20
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.MergeInterval <= 0 {
		r.MergeInterval = time.Minute
	}
	if r.Retention1m <= 0 {
		r.Retention1m = 90 * 24 * time.Hour
	}
	if r.Retention1h <= 0 {
		r.Retention1h = 558 * 24 * time.Hour
	}
	if r.Retention1d <= 0 {
		r.Retention1d = 3650 * 24 * time.Hour
	}
	return r
}

// Stats are counters and gauges of a DB. See DB.Stats.
type Stats struct {
	Series          int   // series in the index
	HeadSamples     int64 // samples in memory not yet in parts (incl. a flush in progress)
	Parts           int   // raw part files
	Partitions      int   // raw day directories
	PartBytes       int64 // bytes of raw part files
	ArchiveParts    int   // archive part files (1m, 1h, 1d)
	ArchiveBytes    int64 // bytes of archive part files
	WALBytes        int64 // bytes of live WAL segments
	WALSegments     int
	DiskBytes       int64 // parts + archives + WAL + series index
	AppendedSamples int64 // samples acknowledged by Append since Open
	Commits         int64 // group commits (one write + one fsync each)
	Flushes         int64
	FlushedSamples  int64
	Merges          int64
	DroppedDays     int64 // partitions (raw days, archive periods) removed by retention
	ReplayedRecords int64 // WAL records replayed by Open
	ReplayedSamples int64
	TornTails       int64 // torn WAL tails truncated by Open
	SkippedSamples  int64 // samples of unknown series skipped on replay
}

type dbStats struct {
	appended, commits, flushes, flushed, merges, dropped atomic.Int64
	replayedRecords, replayedSamples, torn, skipped      atomic.Int64
	walBytes, seriesBytes                                atomic.Int64
}

// commitBatch is what the committer writes in one write + fsync.
type commitBatch struct {
	buf     []byte
	appends [][]Sample
	done    chan struct{}
	err     error
}

// DB is a time-series store in one directory. All methods are safe for
// concurrent use.
type DB struct {
	dir    string
	opts   Options
	logger *slog.Logger
	lock   *os.File
	idx    *seriesIndex
	stats  dbStats

	// The WAL queue: Append and GetOrCreate add to cur under qmu.
	qmu      sync.Mutex
	cur      *commitBatch
	spareBuf []byte
	pending  int
	closed   bool
	notify   chan struct{}

	// The committer's state, under commitMu: the open segment.
	commitMu sync.Mutex
	walDir   string
	seg      *os.File
	segSeq   uint64
	segSize  int64
	walErr   error // sticky: after a failed write or fsync nothing is trusted

	headSamples   atomic.Int64 // active head
	frozenSamples atomic.Int64 // head being flushed
	roomMu        sync.Mutex
	roomCh        chan struct{} // closed when a flush empties the active head

	// What readers see: parts, and which frozen heads are already in them.
	viewMu     sync.RWMutex
	parts      *partSet
	published  uint64
	archivedTo int64 // windows before this are served from archives

	// flushMu serializes the changes of the part set and the manifest:
	// flushes hold it throughout, merges and retention (serialized by
	// mergeMu) only while they pick their inputs and while they commit.
	flushMu  sync.Mutex
	mergeMu  sync.Mutex
	flushGen uint64
	walCut   uint64        // first WAL segment not covered by parts
	nextID   atomic.Uint64 // next part id
	seriesN  int           // series persisted in the series file
	seriesF  *os.File

	flushCh chan struct{}
	quit    chan struct{}
	bgQuit  chan struct{}
	wg      sync.WaitGroup
	bgWG    sync.WaitGroup
	closeMu sync.Mutex
	shut    bool
}

// Open opens (creating if needed) the store in dir. It takes an exclusive
// lock on dir/LOCK (ErrLocked if held), loads the series index and the
// parts, replays the WAL written after the last flush, and truncates a torn
// WAL tail, reporting it in the log.
func Open(dir string, opts *Options) (*DB, error) {
	o := opts.withDefaults()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data dir %s is not usable: %w", dir, err)
	}
	lk, err := lockFile(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, err
	}
	db := &DB{
		dir:     dir,
		opts:    o,
		logger:  o.Logger,
		lock:    lk,
		idx:     newSeriesIndex(),
		walDir:  filepath.Join(dir, "wal"),
		notify:  make(chan struct{}, 1),
		flushCh: make(chan struct{}, 1),
		quit:    make(chan struct{}),
		bgQuit:  make(chan struct{}),
		parts:   &partSet{},
	}
	db.cur = &commitBatch{done: make(chan struct{})}
	db.roomCh = make(chan struct{})
	if err := db.recover(); err != nil {
		db.closeFiles()
		unlockFile(lk)
		return nil, err
	}
	db.wg.Add(1)
	go db.commitLoop()
	db.bgWG.Add(1)
	go db.backgroundLoop()
	return db, nil
}

// recover loads the index and the parts and replays the WAL.
func (db *DB) recover() error {
	start := time.Now()
	if err := os.MkdirAll(db.walDir, 0o755); err != nil {
		return fmt.Errorf("create wal dir: %w", err)
	}
	if err := syncDir(db.dir); err != nil {
		return fmt.Errorf("sync data dir: %w", err)
	}
	if err := db.loadManifest(); err != nil {
		return err
	}
	if err := db.loadSeries(); err != nil {
		return err
	}
	seqs, err := walSegments(db.walDir)
	if err != nil {
		return fmt.Errorf("list wal: %w", err)
	}
	var live []uint64
	for _, s := range seqs {
		if s < db.walCut {
			// Covered by parts: a flush ended before deleting it.
			if err := os.Remove(segmentPath(db.walDir, s)); err != nil {
				return fmt.Errorf("remove flushed wal segment: %w", err)
			}
			continue
		}
		live = append(live, s)
	}
	var records, samples int64
	var buf []Sample
	for i, s := range live {
		path := segmentPath(db.walDir, s)
		data, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("read wal segment %s: %w", path, err)
		}
		n, err := scanSegment(data, func(typ byte, body []byte) error {
			records++
			switch typ {
			case recSeries:
				ref, name, labels, err := decodeSeriesRecord(body)
				if err != nil {
					return err
				}
				db.idx.mu.Lock()
				db.idx.addLocked(ref, name, labels)
				db.idx.mu.Unlock()
			case recSamples:
				buf, err = decodeSamplesRecord(body, buf[:0])
				if err != nil {
					return err
				}
				samples += int64(len(buf))
				db.applySamples([][]Sample{buf})
			default:
				return fmt.Errorf("%w: wal record type %d", ErrCorrupt, typ)
			}
			return nil
		})
		if err != nil {
			if !errors.Is(err, errTorn) && !errors.Is(err, errChecksum) {
				return fmt.Errorf("replay wal segment %s at offset %d: %w", path, n, err)
			}
			if i != len(live)-1 {
				return fmt.Errorf("%w: wal segment %s: %v at offset %d, and later segments exist", ErrCorrupt, path, err, n)
			}
			db.logger.Warn("truncating torn WAL tail", "segment", path, "offset", n,
				"dropped_bytes", len(data)-n, "reason", err.Error())
			if err := os.Truncate(path, int64(n)); err != nil {
				return fmt.Errorf("truncate torn wal tail: %w", err)
			}
			db.stats.torn.Add(1)
		}
		db.stats.walBytes.Add(int64(n))
	}
	db.stats.replayedRecords.Store(records)
	db.stats.replayedSamples.Store(samples)
	next := db.walCut
	if len(live) > 0 && live[len(live)-1]+1 > next {
		next = live[len(live)-1] + 1
	}
	if err := db.openSegment(next); err != nil {
		return err
	}
	db.logger.Info("opened metrics store", "dir", db.dir, "series", db.idx.len(),
		"parts", len(db.parts.parts), "wal_records", records, "wal_samples", samples,
		"duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// allocID returns a new part id.
func (db *DB) allocID() uint64 { return db.nextID.Add(1) - 1 }

// Stats returns the store's counters.
func (db *DB) Stats() Stats {
	db.viewMu.RLock()
	ps := db.parts
	db.viewMu.RUnlock()
	var partBytes, archiveBytes int64
	var nparts, narchive int
	days := map[int64]bool{}
	for _, p := range ps.parts {
		if p.kind != kindRaw {
			narchive++
			archiveBytes += p.size
			continue
		}
		nparts++
		partBytes += p.size
		days[p.bucket] = true
	}
	db.commitMu.Lock()
	segs := int(db.segSeq-db.walCut) + 1
	db.commitMu.Unlock()
	s := Stats{
		Series:          db.idx.len(),
		HeadSamples:     db.headSamples.Load() + db.frozenSamples.Load(),
		Parts:           nparts,
		Partitions:      len(days),
		PartBytes:       partBytes,
		ArchiveParts:    narchive,
		ArchiveBytes:    archiveBytes,
		WALBytes:        db.stats.walBytes.Load(),
		WALSegments:     segs,
		AppendedSamples: db.stats.appended.Load(),
		Commits:         db.stats.commits.Load(),
		Flushes:         db.stats.flushes.Load(),
		FlushedSamples:  db.stats.flushed.Load(),
		Merges:          db.stats.merges.Load(),
		DroppedDays:     db.stats.dropped.Load(),
		ReplayedRecords: db.stats.replayedRecords.Load(),
		ReplayedSamples: db.stats.replayedSamples.Load(),
		TornTails:       db.stats.torn.Load(),
		SkippedSamples:  db.stats.skipped.Load(),
	}
	s.DiskBytes = s.PartBytes + s.ArchiveBytes + s.WALBytes + db.stats.seriesBytes.Load()
	return s
}

// Close stops background work, flushes the head into parts, and releases
// the lock. Appends racing with Close either complete or return ErrClosed.
func (db *DB) Close() error {
	db.closeMu.Lock()
	defer db.closeMu.Unlock()
	if db.shut {
		return ErrClosed
	}
	db.shut = true
	db.qmu.Lock()
	db.closed = true
	db.qmu.Unlock()
	close(db.quit)
	db.wg.Wait()
	close(db.bgQuit)
	db.bgWG.Wait()
	err := db.flush()
	db.closeFiles()
	if uerr := unlockFile(db.lock); err == nil {
		err = uerr
	}
	return err
}

// kill stops the DB as a crash would: no flush, files closed, lock released.
// Only tests call it.
func (db *DB) kill() {
	db.closeMu.Lock()
	defer db.closeMu.Unlock()
	if db.shut {
		return
	}
	db.shut = true
	db.qmu.Lock()
	db.closed = true
	db.qmu.Unlock()
	close(db.quit)
	db.wg.Wait()
	close(db.bgQuit)
	db.bgWG.Wait()
	db.closeFiles()
	unlockFile(db.lock)
}

func (db *DB) closeFiles() {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	db.commitMu.Lock()
	if db.seg != nil {
		db.seg.Close()
		db.seg = nil
	}
	db.commitMu.Unlock()
	if db.seriesF != nil {
		db.seriesF.Close()
		db.seriesF = nil
	}
	db.viewMu.Lock()
	ps := db.parts
	db.parts = &partSet{}
	db.viewMu.Unlock()
	ps.release()
}
