package tsdb

import "sort"

// tvSlice sorts timestamps and values together.
type tvSlice struct {
	ts []int64
	vs []float64
}

func (x tvSlice) Len() int           { return len(x.ts) }
func (x tvSlice) Less(i, j int) bool { return x.ts[i] < x.ts[j] }
func (x tvSlice) Swap(i, j int) {
	x.ts[i], x.ts[j] = x.ts[j], x.ts[i]
	x.vs[i], x.vs[j] = x.vs[j], x.vs[i]
}

// appendLocked adds one sample to the active head. Callers hold s.mu.
func (s *memSeries) appendLocked(t int64, v float64) {
	if n := len(s.ts); n > 0 && t < s.ts[n-1] {
		s.sorted = false
	}
	s.ts = append(s.ts, t)
	s.vs = append(s.vs, v)
}

// sortLocked sorts the active head by time, keeping arrival order among
// equal timestamps. Callers hold s.mu.
func (s *memSeries) sortLocked() {
	if !s.sorted {
		sort.Stable(tvSlice{s.ts, s.vs})
		s.sorted = true
	}
}

// searchRange returns the index range of sorted ts with mint <= t < maxt.
func searchRange(ts []int64, mint, maxt int64) (int, int) {
	lo, hi := 0, len(ts)
	if len(ts) == 0 {
		return 0, 0
	}
	if ts[0] < mint {
		lo = sort.Search(len(ts), func(i int) bool { return ts[i] >= mint })
	}
	if ts[len(ts)-1] >= maxt {
		hi = lo + sort.Search(len(ts)-lo, func(i int) bool { return ts[lo+i] >= maxt })
	}
	return lo, hi
}

// applySamples adds committed samples to the head, in order. The caller
// holds db.commitMu (or is the only goroutine, during replay). Samples of
// unknown series are skipped and counted.
func (db *DB) applySamples(batches [][]Sample) {
	refs := db.idx.snapshot()
	var cur *memSeries
	n := 0
	for _, ss := range batches {
		for _, smp := range ss {
			if smp.Ref == 0 || int(smp.Ref) > len(refs) || refs[smp.Ref-1] == nil {
				db.stats.skipped.Add(1)
				continue
			}
			ms := refs[smp.Ref-1]
			if ms != cur {
				if cur != nil {
					cur.mu.Unlock()
				}
				cur = ms
				cur.mu.Lock()
			}
			cur.appendLocked(smp.T, smp.V)
			n++
		}
	}
	if cur != nil {
		cur.mu.Unlock()
	}
	if db.headSamples.Add(int64(n)) >= int64(db.opts.FlushSamples) {
		select {
		case db.flushCh <- struct{}{}:
		default:
		}
	}
}
