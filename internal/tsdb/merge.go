package tsdb

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

const (
	mergeMinParts = 4  // merge a partition once it has this many parts
	mergeMaxParts = 8  // and at most this many at once
	mergeForce    = 16 // beyond this many parts, merge whatever the sizes
)

// errStopped ends a merge or retention pass when Close begins.
var errStopped = errors.New("tsdb: stopping")

// stopping reports whether Close has begun stopping background work.
func (db *DB) stopping() bool {
	select {
	case <-db.bgQuit:
		return true
	default:
		return false
	}
}

// pickMerge chooses the parts of one partition (in sequence order) to merge:
// the cheapest contiguous run, as long as possible, in which no part is
// more than twice the size of the others together (so a big part is not
// rewritten for every few small ones); nil if none should be merged.
func pickMerge(day []*part) []*part {
	if len(day) < mergeMinParts {
		return nil
	}
	for w := min(len(day), mergeMaxParts); w >= 2; w-- {
		var best []*part
		var bestSize int64
		for k := 0; k+w <= len(day); k++ {
			var size, biggest int64
			for _, p := range day[k : k+w] {
				size += p.size
				biggest = max(biggest, p.size)
			}
			if biggest > 2*(size-biggest) {
				continue
			}
			if best == nil || size < bestSize {
				best, bestSize = day[k:k+w], size
			}
		}
		if best != nil {
			return best
		}
	}
	if len(day) <= mergeForce {
		return nil
	}
	var best []*part
	var bestSize int64
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
	return best
}

// mergeOnce merges one run of parts chosen by pickMerge in the first
// partition that has one. It reports whether it merged anything.
func (db *DB) mergeOnce() (bool, error) {
	db.mergeMu.Lock()
	defer db.mergeMu.Unlock()
	db.flushMu.Lock()
	parts := db.parts.parts
	var best []*part
	for i := 0; i < len(parts) && best == nil; {
		j := i
		for j < len(parts) && parts[j].kind == parts[i].kind && parts[j].bucket == parts[i].bucket {
			j++
		}
		best = pickMerge(parts[i:j])
		i = j
	}
	db.flushMu.Unlock()
	if best == nil {
		return false, nil
	}
	// The inputs stay in the part set meanwhile: only merges and retention
	// remove parts, and they hold mergeMu. Flushes may add parts.
	start := time.Now()
	end := db.stats.mergeTime.start()
	merged, err := db.mergeParts(best, newPacer(mergeDuty, db.bgQuit))
	end()
	if err != nil {
		return false, err
	}
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	parts = db.parts.parts
	all := make([]*part, 0, len(parts)-len(best)+1)
	for _, p := range parts {
		if !slices.Contains(best, p) {
			all = append(all, p)
		}
	}
	all = append(all, merged)
	sortParts(all)
	if err := db.writeManifest(all, db.walCut, db.archivedTo); err != nil {
		merged.obsolete.Store(true)
		merged.decRef()
		return false, err
	}
	db.viewMu.Lock()
	db.parts = &partSet{parts: all}
	db.viewMu.Unlock()
	db.releaseReplaced(best)
	db.stats.merges.Add(1)
	db.logger.Debug("merged parts", "path", merged.path, "inputs", len(best),
		"bytes", merged.size, "duration", time.Since(start).Round(time.Millisecond))
	return true, nil
}

// mergeParts writes one part holding every sample (or archive point) of
// the inputs, which are parts of one partition in sequence order. Among
// equal timestamps, samples of an earlier part come first.
func (db *DB) mergeParts(in []*part, pace *pacer) (*part, error) {
	k := partKey{in[0].kind, in[0].bucket}
	id := db.allocID()
	w, err := createPart(db.partPath(k.kind, k.bucket, id), partBuf)
	if err != nil {
		return nil, err
	}
	if k.kind == kindRaw {
		st := new(scanState)
		readers := make([]blockReader, len(in))
		for i, p := range in {
			readers[i].p = p
		}
		err = eachSeries(in, func(ref SeriesRef, blocks [][]blockMeta) error {
			if db.stopping() {
				return errStopped
			}
			pace.step()
			if n, ok := copyable(blocks); ok {
				if err := w.beginSeries(ref, n); err != nil {
					return err
				}
				for i, bs := range blocks {
					for b := range bs {
						blk, err := readers[i].block(&bs[b])
						if err == nil {
							err = w.copyBlock(blk, &bs[b])
						}
						if err != nil {
							return fmt.Errorf("part %s: %w", in[i].path, err)
						}
					}
				}
				return nil
			}
			ts, vs, err := st.readMerged(in, blocks)
			if err != nil {
				return err
			}
			return w.addSeries(ref, ts, vs)
		})
	} else {
		var enc blockEncoder
		var times []int64
		err = mergeArchiveSeries(in, func(ref SeriesRef, pts []Aggregate) error {
			if db.stopping() {
				return errStopped
			}
			pace.step()
			times = times[:0]
			for _, p := range pts {
				times = append(times, p.T)
			}
			return w.addBlocks(ref, times, func(dst []byte, i, j int) []byte {
				return enc.appendArchiveBlock(dst, pts[i:j])
			})
		})
	}
	if err != nil {
		w.abort()
		return nil, fmt.Errorf("merge: %w", err)
	}
	parts, err := db.finishParts(map[partKey]*partWriter{k: w}, map[partKey]uint64{k: id}, map[partKey]uint64{k: in[0].seq})
	if err != nil {
		return nil, err
	}
	return parts[0], nil
}

// minCopySamples is the fewest samples a block may hold for a merge to
// copy it rather than encode its samples again.
const minCopySamples = 256

// copyable reports whether a merge may copy a series' blocks (blocks[k]:
// those in the k-th part merged) unchanged, and how many there are: when
// they follow one another in time, as the parts of a series written in
// time order do, and none is small. Copying costs a read and a write of
// the encoded bytes, 4 ns per sample; decoding, merging and encoding again
// cost 183 (BenchmarkMerge), which made merges, at a quarter of a core,
// run most of the time under a sustained load of two million samples a
// second. Small blocks are
// encoded again, into blocks of up to maxBlockSamples, so that a sparse
// series does not keep one small block per flush.
func copyable(blocks [][]blockMeta) (int, bool) {
	n := 0
	var prev *blockMeta
	for _, bs := range blocks {
		for b := range bs {
			bm := &bs[b]
			if bm.count < minCopySamples || prev != nil && bm.minT < prev.maxT {
				return 0, false
			}
			prev = bm
			n++
		}
	}
	return n, n > 0
}

// applyRetention drops the raw day partitions that ended before now minus
// RawRetention, folding them into the archives first, and the archive
// partitions past their own retention.
func (db *DB) applyRetention() error {
	db.mergeMu.Lock()
	defer db.mergeMu.Unlock()
	now := db.opts.Now()
	var cutoff [numKinds]int64
	for k := range cutoff {
		cutoff[k] = floorDiv(now.Add(-db.opts.retention(uint8(k))).UnixMilli(), kindBucket[k])
	}
	db.flushMu.Lock()
	var drop, rawDrop []*part
	for _, p := range db.parts.parts {
		if p.bucket < cutoff[p.kind] {
			drop = append(drop, p)
			if p.kind == kindRaw {
				rawDrop = append(rawDrop, p)
			}
		}
	}
	db.flushMu.Unlock()
	if len(drop) == 0 {
		return nil
	}
	start := time.Now()
	archived, err := db.archiveDays(rawDrop, cutoff)
	if err != nil {
		return fmt.Errorf("archive raw days: %w", err)
	}
	db.flushMu.Lock()
	defer db.flushMu.Unlock()
	var keep []*part
	for _, p := range db.parts.parts {
		if !slices.Contains(drop, p) {
			keep = append(keep, p)
		}
	}
	keep = append(keep, archived...)
	sortParts(keep)
	archivedTo := db.archivedTo
	if len(rawDrop) > 0 {
		archivedTo = max(archivedTo, cutoff[kindRaw]*dayMillis)
	}
	if err := db.writeManifest(keep, db.walCut, archivedTo); err != nil {
		for _, p := range archived {
			p.obsolete.Store(true)
			p.decRef()
		}
		return err
	}
	db.viewMu.Lock()
	db.parts = &partSet{parts: keep}
	db.archivedTo = archivedTo
	db.viewMu.Unlock()
	dirs := map[partKey]bool{}
	for _, p := range drop {
		dirs[partKey{p.kind, p.bucket}] = true
	}
	db.releaseReplaced(drop)
	db.stats.dropped.Add(int64(len(dirs)))
	db.logger.Info("retention dropped partitions", "partitions", len(dirs), "parts", len(drop),
		"archive_parts", len(archived), "duration", time.Since(start).Round(time.Millisecond))
	return nil
}
