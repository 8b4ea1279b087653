package tsdb

import "sort"

// headBuf holds samples of a series' head: its slices have the buffer's
// full capacity as length, and only a prefix is in use.
type headBuf struct {
	ts []int64
	vs []float64
}

// minHeadBuf is the capacity of a series' first head buffer.
const minHeadBuf = 16

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

// sortStable sorts ts and vs by time, keeping arrival order among equal
// timestamps.
func sortStable(ts []int64, vs []float64) {
	sort.Stable(tvSlice{ts, vs})
}

// appendHead adds one sample to the active head. Only the committer calls
// it (holding commitMu, or alone during replay), without s.mu.
func (s *memSeries) appendHead(t int64, v float64) {
	n := s.n.Load()
	if n == int64(len(s.cts)) {
		s.grow(n)
	}
	ts := s.cts
	if n > 0 && t < ts[n-1] && !s.unsorted.Load() {
		s.unsorted.Store(true)
	}
	ts[n], s.cvs[n] = t, v
	s.n.Store(n + 1)
}

// grow replaces the full active buffer (holding n samples) by one twice
// as large holding a copy of them. Readers still copying from the old one
// read samples that do not change.
func (s *memSeries) grow(n int64) {
	c := max(minHeadBuf, 2*n)
	nb := &headBuf{ts: make([]int64, c), vs: make([]float64, c)}
	copy(nb.ts, s.cts[:n])
	copy(nb.vs, s.cvs[:n])
	s.setBuf(nb)
}

// setBuf makes b the active buffer. The committer, or a flush holding
// commitMu, calls it.
func (s *memSeries) setBuf(b *headBuf) {
	if b == nil {
		s.cts, s.cvs = nil, nil
	} else {
		s.cts, s.cvs = b.ts, b.vs
	}
	s.buf.Store(b)
}

// idleGens is how many flushes in a row without a sample make a series
// give its head buffers up. More than one: a flush that follows another
// closely (an explicit Flush) finds many series without a new sample.
const idleGens = 3

// freezeLocked moves the active head into the frozen head of flush
// generation gen, sorted, and gives the active head the spare buffer. It
// returns the samples frozen. A series that had no sample since the last
// idleGens freezes gives its buffers up. Callers hold commitMu, flushMu
// and s.mu.
func (s *memSeries) freezeLocked(gen uint64) int64 {
	n := s.n.Load()
	if n == 0 {
		if s.idle++; s.idle >= idleGens {
			s.setBuf(nil)
			s.spare = nil
			s.idle = 0
		}
		return 0
	}
	s.idle = 0
	b := s.buf.Load()
	ts, vs := b.ts[:n], b.vs[:n]
	if s.unsorted.Load() {
		sortStable(ts, vs)
	}
	s.fts, s.fvs, s.fgen, s.fbuf = ts, vs, gen, b
	next := s.spare
	if next != nil && int64(len(next.ts)) > 4*n+4*minHeadBuf {
		next = nil // from a burst: let the next generation grow to its own size
	}
	s.spare = nil
	s.setBuf(next)
	s.n.Store(0)
	s.unsorted.Store(false)
	return n
}

// releaseFrozenLocked drops the frozen head once its flush is published,
// keeping its buffer as the spare. Callers hold flushMu and s.mu.
func (s *memSeries) releaseFrozenLocked() {
	s.spare = s.fbuf
	s.fts, s.fvs, s.fbuf = nil, nil, nil
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
	n := 0
	for _, ss := range batches {
		for _, smp := range ss {
			if smp.Ref == 0 || int(smp.Ref) > len(refs) || refs[smp.Ref-1] == nil {
				db.stats.skipped.Add(1)
				continue
			}
			refs[smp.Ref-1].appendHead(smp.T, smp.V)
			n++
		}
	}
	if db.headSamples.Add(int64(n)) >= int64(db.opts.FlushSamples) {
		select {
		case db.flushCh <- struct{}{}:
		default:
		}
	}
}
