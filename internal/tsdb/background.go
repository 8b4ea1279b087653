package tsdb

import (
	"errors"
	"time"
)

// Background work (flushes of the head and merges of parts) is CPU-bound
// and comes in bursts: a flush of 4 Mi samples takes 0.15-0.2 s of CPU, a
// merge of four parts of that size 0.4-0.7 s. On a machine of two cores a burst at
// full speed takes a whole core from the work that answers requests, whose
// latency then grows to tens of milliseconds. Background jobs are therefore
// paced to a share of one core; Flush and Close flush at full speed.
const (
	flushDuty  = 0.5  // share of a core a background flush may use
	mergeDuty  = 0.25 // share of a core a merge may use
	pacerSlice = time.Millisecond
)

// pacer keeps a background job to a share of one core. The job calls step
// between units of work (series); step lets it run for pacerSlice of wall
// time, then sleeps long enough for the job to have run duty of the time
// since the last sleep. Time the job spends waiting for a core counts as
// running, so it yields more when the cores are busy. Once quit is closed
// step no longer sleeps. A nil *pacer never sleeps. A pacer is used by one
// goroutine.
type pacer struct {
	duty  float64
	quit  <-chan struct{}
	start time.Time
	timer *time.Timer
}

func newPacer(duty float64, quit <-chan struct{}) *pacer {
	return &pacer{duty: duty, quit: quit, start: time.Now()}
}

// step sleeps if the job has run for a slice.
func (p *pacer) step() {
	if p == nil {
		return
	}
	ran := time.Since(p.start)
	if ran < pacerSlice {
		return
	}
	rest := time.Duration(float64(ran) * (1 - p.duty) / p.duty)
	if p.timer == nil {
		p.timer = time.NewTimer(rest)
	} else {
		p.timer.Reset(rest)
	}
	select {
	case <-p.timer.C:
	case <-p.quit:
		p.timer.Stop()
	}
	p.start = time.Now()
}

// flushRetryMin and flushRetryMax bound the pause after a failed
// background flush, doubled at each failure in a row.
const (
	flushRetryMin = time.Second
	flushRetryMax = time.Minute
)

// flushLoop flushes the head, paced, when it is full or FlushInterval
// passes, and then wakes mergeLoop. It runs apart from merges, so that a
// long merge never holds up a flush while the head grows. After a failed
// flush it pauses, and then flushes again, until a flush succeeds.
func (db *DB) flushLoop() {
	defer db.bgWG.Done()
	t := time.NewTicker(db.opts.FlushInterval)
	defer t.Stop()
	var backoff time.Duration // after a failed flush, the pause before the next
	for {
		if backoff == 0 {
			select {
			case <-db.bgQuit:
				return
			case <-t.C:
			case <-db.flushCh:
				// Only if the head is still full: waitHeadRoom signals
				// without commitMu, so its signal may predate a freeze.
				if db.headSamples.Load() < int64(db.opts.FlushSamples) {
					continue
				}
			}
		}
		err := db.flushWith(newPacer(flushDuty, db.bgQuit))
		switch {
		case err == nil:
			backoff = 0
		case errors.Is(err, ErrClosed):
			return
		default:
			// A full head asks for a flush at every commit: without a
			// pause, a disk that fails would be written (a WAL segment,
			// a part per day) as fast as it fails.
			backoff = min(max(2*backoff, flushRetryMin), flushRetryMax)
			db.logger.Error("flush failed; the head stays in memory and in the WAL", "err", err, "retry_in", backoff)
			select {
			case <-db.bgQuit:
				return
			case <-time.After(backoff):
			}
		}
		select {
		case db.mergeCh <- struct{}{}:
		default:
		}
	}
}

// mergeLoop runs retention and then merges, paced, until none is due,
// every MergeInterval and after every background flush.
func (db *DB) mergeLoop() {
	defer db.bgWG.Done()
	t := time.NewTicker(db.opts.MergeInterval)
	defer t.Stop()
	for {
		select {
		case <-db.bgQuit:
			return
		case <-t.C:
		case <-db.mergeCh:
		}
		if err := db.applyRetention(); err != nil && !errors.Is(err, errStopped) {
			db.logger.Error("retention failed", "err", err)
		}
		for !db.stopping() {
			merged, err := db.mergeOnce()
			if err != nil && !errors.Is(err, errStopped) {
				db.logger.Error("merge failed", "err", err)
			}
			if !merged || err != nil {
				break
			}
		}
	}
}
