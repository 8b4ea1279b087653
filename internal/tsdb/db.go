package tsdb

import (
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
	// holds this many samples. Default 5 Mi (80 MB of head; the chunks a
	// flush frees are kept for the next samples). Should the head reach 4 times
	// this (flushes falling behind or failing), Append waits up to 5 s for
	// a flush to make room and then returns ErrOverloaded. A background
	// flush that fails is tried again after a pause of 1 s, doubled at
	// each failure in a row up to 1 min.
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

	// walSegmentSize is the size of a preallocated WAL segment. Default
	// 16 MiB; tests make it smaller.
	walSegmentSize int64
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
		r.FlushSamples = 5 << 20
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
	if r.walSegmentSize <= 0 {
		r.walSegmentSize = defaultWALSegmentSize
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
	WALBytes        int64 // bytes of the records in live WAL segments (their files are preallocated, 16 MiB each)
	WALSegments     int   // live WAL segments, not counting the one prepared ahead
	DiskBytes       int64 // parts + archives + WAL + series index
	AppendedSamples int64 // samples acknowledged by Append since Open
	Commits         int64 // group commits (one write + one fdatasync each)
	Flushes         int64
	FlushedSamples  int64
	Merges          int64
	DroppedDays     int64 // partitions (raw days, archive periods) removed by retention
	ReplayedRecords int64 // WAL records replayed by Open
	ReplayedSamples int64
	TornTails       int64 // torn WAL tails truncated by Open
	SkippedSamples  int64 // samples of unknown series skipped on replay

	// Time spent flushing the head and merging parts since Open, the one
	// running now included: a flush or merge was running during any
	// interval in which one of them grew.
	FlushTime, MergeTime time.Duration
}

type dbStats struct {
	appended, commits, flushes, flushed, merges, dropped atomic.Int64
	replayedRecords, replayedSamples, torn, skipped      atomic.Int64
	walBytes, seriesBytes                                atomic.Int64
	flushTime, mergeTime                                 busyTime
}

// busyTime adds up the time spent in one kind of job, the running one
// included. Jobs of a kind never overlap.
type busyTime struct {
	mu    sync.Mutex
	done  time.Duration // jobs finished
	since time.Time     // the running job's start; zero when none runs
}

// start marks a job started; the returned func marks it ended.
func (b *busyTime) start() (end func()) {
	b.mu.Lock()
	b.since = time.Now()
	b.mu.Unlock()
	return func() {
		b.mu.Lock()
		b.done += time.Since(b.since)
		b.since = time.Time{}
		b.mu.Unlock()
	}
}

func (b *busyTime) total() time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.since.IsZero() {
		return b.done
	}
	return b.done + time.Since(b.since)
}

// commitBatch is what the committer writes in one write + fdatasync.
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

	// The committer's state, under commitMu: the open segment, and the
	// preparation of the next one (segment.go).
	commitMu sync.Mutex
	walDir   string
	seg      *os.File
	segSeq   uint64
	segOff   int64 // bytes of records in seg: where the next write goes
	prep     *segPrep
	prepWG   sync.WaitGroup
	// walFailed is set once a write or sync of the WAL failed: what the
	// segment holds is no longer known, and nothing is written after it
	// (Err). Atomic, so that Err need not wait for commitMu, held across
	// every fdatasync.
	walFailed atomic.Pointer[error]
	segErr    error // the last failure to create the next segment, until one succeeds
	segErrAt  time.Time

	chunks        chunkPool    // head chunks not in use
	headSamples   atomic.Int64 // active head
	frozenSamples atomic.Int64 // head being flushed
	roomMu        sync.Mutex
	roomCh        chan struct{} // closed when a flush has written the head it froze

	// What readers see: parts, and which frozen heads are already in them.
	viewMu     sync.RWMutex
	parts      *partSet
	published  uint64
	archivedTo int64 // windows before this are served from archives

	// flushMu serializes the changes of the part set and the manifest:
	// flushes hold it throughout, merges and retention (serialized by
	// mergeMu) only while they pick their inputs and while they commit.
	flushMu   sync.Mutex
	mergeMu   sync.Mutex
	flushGen  uint64
	walCut    uint64        // first WAL segment not covered by parts
	nextID    atomic.Uint64 // next part id
	seriesN   int           // series persisted in the series file
	seriesF   *os.File
	seriesErr error       // a failed write to the series file that could not be undone
	keepFiles atomic.Bool // a manifest's directory sync failed: delete no file it may name

	flushCh chan struct{} // the head is full
	mergeCh chan struct{} // a flush added a part
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
		mergeCh: make(chan struct{}, 1),
		quit:    make(chan struct{}),
		bgQuit:  make(chan struct{}),
		parts:   &partSet{},
	}
	db.cur = &commitBatch{done: make(chan struct{})}
	db.chunks.maxBig = o.FlushSamples/chunkBig + o.FlushSamples/chunkBig/4
	db.roomCh = make(chan struct{})
	if err := db.recover(); err != nil {
		db.closeFiles()
		unlockFile(lk)
		return nil, err
	}
	db.wg.Add(1)
	go db.commitLoop()
	db.bgWG.Add(2)
	go db.flushLoop()
	go db.mergeLoop()
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
	records, samples, err := db.replayWAL()
	if err != nil {
		return err
	}
	db.stats.replayedRecords.Store(records)
	db.stats.replayedSamples.Store(samples)
	db.logger.Info("opened metrics store", "dir", db.dir, "series", db.idx.count(),
		"parts", len(db.parts.parts), "wal_records", records, "wal_samples", samples,
		"duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// allocID returns a new part id.
func (db *DB) allocID() uint64 { return db.nextID.Add(1) - 1 }

// Err returns the error that makes the store refuse every write until it
// is opened again (a failed write or sync of the write-ahead log), or nil.
func (db *DB) Err() error {
	if p := db.walFailed.Load(); p != nil {
		return *p
	}
	return nil
}

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
		Series:          db.idx.count(),
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
		FlushTime:       db.stats.flushTime.total(),
		MergeTime:       db.stats.mergeTime.total(),
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
	db.closeSegments()
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
