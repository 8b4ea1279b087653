package tsdb

import (
	"slices"
	"sort"
	"sync"
)

// A series' head holds its samples in chunks: a first one of chunkSmall
// samples (series that get few samples between flushes stay small), then
// chunks of chunkBig. Chunks come from the DB's pool and go back to it
// once the flush that wrote them into parts is published, so that in a
// steady flow the committer allocates nothing, and a head that grows
// takes a chunk instead of copying itself into a larger buffer (10,000
// series growing alike would do that all at once).
const (
	chunkSmall = 16
	chunkBig   = 128
)

// headChunk holds consecutive samples of a series' head.
type headChunk struct {
	ts []int64
	vs []float64
}

// chunkList is the chunks of a head, in order; entries past the ones in
// use are nil.
type chunkList struct {
	c []*headChunk
}

// chunkPos returns the chunk and the offset in it of sample i of a head.
func chunkPos(i int64) (int, int) {
	if i < chunkSmall {
		return 0, int(i)
	}
	i -= chunkSmall
	return 1 + int(i/chunkBig), int(i % chunkBig)
}

// chunksFor returns how many chunks hold n samples.
func chunksFor(n int64) int {
	if n == 0 {
		return 0
	}
	c, _ := chunkPos(n - 1)
	return c + 1
}

// at returns sample i of the head in l.
func (l *chunkList) at(i int64) (int64, float64) {
	c, o := chunkPos(i)
	return l.c[c].ts[o], l.c[c].vs[o]
}

// appendRange appends samples [lo, hi) of the head in l to ts and vs.
func (l *chunkList) appendRange(ts []int64, vs []float64, lo, hi int64) ([]int64, []float64) {
	if lo < hi {
		ts, vs = slices.Grow(ts, int(hi-lo)), slices.Grow(vs, int(hi-lo))
	}
	for lo < hi {
		c, o := chunkPos(lo)
		ch := l.c[c]
		e := min(len(ch.ts), o+int(hi-lo))
		ts = append(ts, ch.ts[o:e]...)
		vs = append(vs, ch.vs[o:e]...)
		lo += int64(e - o)
	}
	return ts, vs
}

// searchRange returns the range of the first n samples of the head in l,
// sorted by time, with mint <= t < maxt.
func (l *chunkList) searchRange(n, mint, maxt int64) (int64, int64) {
	tAt := func(i int) int64 { t, _ := l.at(int64(i)); return t }
	lo := int64(sort.Search(int(n), func(i int) bool { return tAt(i) >= mint }))
	hi := lo + int64(sort.Search(int(n-lo), func(i int) bool { return tAt(int(lo)+i) >= maxt }))
	return lo, hi
}

// chunkSorter sorts the first n samples of a chunked head by time.
type chunkSorter struct {
	l *chunkList
	n int
}

func (x chunkSorter) Len() int { return x.n }
func (x chunkSorter) Less(i, j int) bool {
	ci, oi := chunkPos(int64(i))
	cj, oj := chunkPos(int64(j))
	return x.l.c[ci].ts[oi] < x.l.c[cj].ts[oj]
}
func (x chunkSorter) Swap(i, j int) {
	ci, oi := chunkPos(int64(i))
	cj, oj := chunkPos(int64(j))
	a, b := x.l.c[ci], x.l.c[cj]
	a.ts[oi], b.ts[oj] = b.ts[oj], a.ts[oi]
	a.vs[oi], b.vs[oj] = b.vs[oj], a.vs[oi]
}

// chunkPool holds the head chunks not in use. Safe for concurrent use.
type chunkPool struct {
	mu         sync.Mutex
	small, big []*headChunk
	// maxBig bounds the big chunks kept: a little more than a flush
	// generation (FlushSamples samples); past it, chunks are left to the
	// GC.
	maxBig int
}

// maxSmallChunks bounds the small chunks a pool keeps.
const maxSmallChunks = 1 << 16

func (p *chunkPool) get(size int) *headChunk {
	p.mu.Lock()
	free := &p.big
	if size == chunkSmall {
		free = &p.small
	}
	if k := len(*free); k > 0 {
		c := (*free)[k-1]
		(*free)[k-1] = nil
		*free = (*free)[:k-1]
		p.mu.Unlock()
		return c
	}
	p.mu.Unlock()
	return &headChunk{ts: make([]int64, size), vs: make([]float64, size)}
}

// put returns chunks to the pool.
func (p *chunkPool) put(cs []*headChunk) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		if len(c.ts) == chunkSmall {
			if len(p.small) < maxSmallChunks {
				p.small = append(p.small, c)
			}
		} else if len(p.big) < p.maxBig {
			p.big = append(p.big, c)
		}
	}
}

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
func (s *memSeries) appendHead(t int64, v float64, pool *chunkPool) {
	n := s.n.Load()
	c, o := chunkPos(n)
	if o == 0 {
		s.addChunk(c, pool)
	}
	if n > 0 && t < s.lastT && !s.unsorted.Load() {
		s.unsorted.Store(true)
	}
	s.lastT = t
	s.curT[o], s.curV[o] = t, v
	s.n.Store(n + 1)
}

// addChunk puts a chunk from the pool at position c of the active head's
// list, replacing the list by a longer copy when it is full, and makes it
// the current chunk. Readers see neither before n grows past them.
func (s *memSeries) addChunk(c int, pool *chunkPool) {
	l := s.list.Load()
	if l == nil || c == len(l.c) {
		nl := &chunkList{c: make([]*headChunk, max(4, 2*c))}
		if l != nil {
			copy(nl.c, l.c)
		}
		l = nl
		s.list.Store(l)
	}
	size := chunkBig
	if c == 0 {
		size = chunkSmall
	}
	ch := pool.get(size)
	l.c[c] = ch
	s.curT, s.curV = ch.ts, ch.vs
}

// idleGens is how many flushes in a row without a sample make a series
// give its chunk lists up. More than one: a flush that follows another
// closely (an explicit Flush) finds many series without a new sample.
const idleGens = 3

// freezeLocked moves the active head into the frozen head of flush
// generation gen, sorted, and gives the active head the spare list. It
// returns the samples frozen. Callers hold commitMu, flushMu and s.mu.
func (s *memSeries) freezeLocked(gen uint64) int64 {
	n := s.n.Load()
	if n == 0 {
		if s.idle++; s.idle >= idleGens {
			s.list.Store(nil)
			s.spare = nil
			s.idle = 0
		}
		return 0
	}
	s.idle = 0
	l := s.list.Load()
	if s.unsorted.Load() {
		sort.Stable(chunkSorter{l, int(n)})
	}
	s.flist, s.fn, s.fgen = l, n, gen
	s.list.Store(s.spare)
	s.spare = nil
	s.curT, s.curV = nil, nil
	s.n.Store(0)
	s.unsorted.Store(false)
	return n
}

// releaseFrozenLocked drops the frozen head once its flush is published:
// its chunks go back to the pool, its emptied list becomes the spare.
// Callers hold flushMu and s.mu.
func (s *memSeries) releaseFrozenLocked(pool *chunkPool) {
	used := s.flist.c[:chunksFor(s.fn)]
	pool.put(used)
	clear(used)
	s.spare = s.flist
	s.flist, s.fn = nil, 0
}

// appendFrozen appends the samples of the frozen head in [mint, maxt) to
// ts and vs. Callers hold s.mu.
func (s *memSeries) appendFrozen(ts []int64, vs []float64, mint, maxt int64) ([]int64, []float64) {
	lo, hi := s.flist.searchRange(s.fn, mint, maxt)
	return s.flist.appendRange(ts, vs, lo, hi)
}

// appendActive appends the samples of the active head in [mint, maxt) to
// ts and vs, sorted by time. Callers hold s.mu.
func (s *memSeries) appendActive(ts []int64, vs []float64, mint, maxt int64) ([]int64, []float64) {
	n := s.n.Load()
	if n == 0 {
		return ts, vs
	}
	l := s.list.Load()
	if !s.unsorted.Load() {
		lo, hi := l.searchRange(n, mint, maxt)
		return l.appendRange(ts, vs, lo, hi)
	}
	// Sorted in a copy: the committer may be appending to the head.
	start := len(ts)
	ts, vs = l.appendRange(ts, vs, 0, n)
	cts, cvs := ts[start:], vs[start:]
	sortStable(cts, cvs)
	lo, hi := searchRange(cts, mint, maxt)
	copy(cts, cts[lo:hi])
	copy(cvs, cvs[lo:hi])
	return ts[:start+hi-lo], vs[:start+hi-lo]
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
			s := seriesAt(refs, smp.Ref)
			if s == nil {
				db.stats.skipped.Add(1)
				continue
			}
			s.appendHead(smp.T, smp.V, &db.chunks)
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
