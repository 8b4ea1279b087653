package tsdb

import (
	"fmt"
	"slices"
	"time"
)

const (
	mergeMinParts = 4 // merge a day once it has this many parts
	mergeMaxParts = 8 // and at most this many at once
)

// mergeOnce merges the smallest contiguous run of parts of one day that
// has too many parts. It reports whether it merged anything.
func (db *DB) mergeOnce() (bool, error) {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	parts := db.parts.parts
	var best []*part
	var bestSize int64
	for i := 0; i < len(parts); {
		j := i
		for j < len(parts) && parts[j].day == parts[i].day {
			j++
		}
		day := parts[i:j]
		if len(day) >= mergeMinParts {
			w := min(len(day), mergeMaxParts)
			for k := 0; k+w <= len(day); k++ {
				var size int64
				for _, p := range day[k : k+w] {
					size += p.size
				}
				if best == nil || size < bestSize {
					best, bestSize = day[k:k+w], size
				}
			}
		}
		i = j
	}
	if best == nil {
		return false, nil
	}
	start := time.Now()
	merged, err := db.mergeParts(best)
	if err != nil {
		return false, err
	}
	all := make([]*part, 0, len(parts)-len(best)+1)
	for _, p := range parts {
		if !slices.Contains(best, p) {
			all = append(all, p)
		}
	}
	all = append(all, merged)
	sortParts(all)
	if err := db.writeManifest(all, db.walCut); err != nil {
		merged.obsolete.Store(true)
		merged.decRef()
		return false, err
	}
	db.viewMu.Lock()
	db.parts = &partSet{parts: all}
	db.viewMu.Unlock()
	for _, p := range best {
		p.obsolete.Store(true)
		p.decRef()
	}
	db.stats.merges.Add(1)
	db.logger.Debug("merged parts", "day", dayDirName(merged.day), "inputs", len(best),
		"bytes", merged.size, "duration", time.Since(start).Round(time.Millisecond))
	return true, nil
}

// mergeParts writes one part holding every sample of the inputs, which are
// parts of one day in sequence order. Among equal timestamps, samples of an
// earlier part come first.
func (db *DB) mergeParts(in []*part) (*part, error) {
	day := in[0].day
	id := db.nextID
	db.nextID++
	w, err := createPart(db.partPath(day, id))
	if err != nil {
		return nil, err
	}
	st := new(scanState)
	cursors := make([]int, len(in))
	for {
		// The next ref: the smallest among the cursors.
		var ref SeriesRef
		for k, p := range in {
			if c := cursors[k]; c < len(p.refs) && (ref == 0 || p.refs[c] < ref) {
				ref = p.refs[c]
			}
		}
		if ref == 0 {
			break
		}
		st.mts, st.mvs, st.bnd = st.mts[:0], st.mvs[:0], append(st.bnd[:0], 0)
		for k, p := range in {
			c := cursors[k]
			if c >= len(p.refs) || p.refs[c] != ref {
				continue
			}
			cursors[k]++
			bs := p.blocks[p.first[c]:p.first[c+1]]
			for b := range bs {
				ts, vs, err := p.readBlock(&bs[b], &st.dec)
				if err != nil {
					w.abort()
					return nil, fmt.Errorf("merge: %w", err)
				}
				st.mts = append(st.mts, ts...)
				st.mvs = append(st.mvs, vs...)
			}
			st.bnd = append(st.bnd, len(st.mts))
		}
		ts, vs := st.mergeRuns()
		if err := w.addSeries(ref, ts, vs); err != nil {
			w.abort()
			return nil, err
		}
	}
	parts, err := db.finishParts(map[int64]*partWriter{day: w}, map[int64]uint64{day: id}, map[int64]uint64{day: in[0].seq})
	if err != nil {
		return nil, err
	}
	return parts[0], nil
}

// applyRetention drops the day partitions that ended before now minus
// RawRetention.
func (db *DB) applyRetention() error {
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	cutoff := dayOf(db.opts.Now().Add(-db.opts.RawRetention).UnixMilli())
	parts := db.parts.parts
	var keep, drop []*part
	for _, p := range parts {
		if p.day < cutoff {
			drop = append(drop, p)
		} else {
			keep = append(keep, p)
		}
	}
	if len(drop) == 0 {
		return nil
	}
	if err := db.writeManifest(keep, db.walCut); err != nil {
		return err
	}
	db.viewMu.Lock()
	db.parts = &partSet{parts: keep}
	db.viewMu.Unlock()
	days := map[int64]bool{}
	for _, p := range drop {
		days[p.day] = true
		p.obsolete.Store(true)
		p.decRef()
	}
	db.stats.dropped.Add(int64(len(days)))
	db.logger.Info("retention dropped partitions", "days", len(days), "parts", len(drop))
	return nil
}
