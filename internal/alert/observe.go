package alert

import (
	"maps"
	"math/bits"
	"slices"
	"sort"
	"sync"

	"github.com/vigia-mon/vigia/internal/tsdb"
)

// seriesBuf holds the samples of one watched series received since the
// last check.
type seriesBuf struct {
	ref tsdb.SeriesRef

	mu   sync.Mutex
	ts   []int64
	vs   []float64
	dead bool // no longer watched: Observe drops what it would append

	// Owned by the check (under Monitor.mu): the samples it took, and the
	// slices it hands back for the next period.
	tts, spareTs []int64
	tvs, spareVs []float64
}

// maxSpare is the largest buffer (in samples) a series keeps between
// checks; a larger one is left to the garbage collector so that one burst
// does not pin its memory forever. Nor does a series keep a buffer of more
// than minSpare samples and over twice what its check took: once a burst
// is over, its buffer goes too, so that bursts on series after series do
// not leave a big buffer in each.
const (
	maxSpare = 1 << 16
	minSpare = 1 << 10
)

// take moves the pending samples to tts/tvs and returns how many there
// were. The sample appended just before the swap is in this check; the one
// appended just after is in the next: each in exactly one.
func (b *seriesBuf) take() int {
	b.mu.Lock()
	b.tts, b.tvs = b.ts, b.vs
	b.ts, b.vs = b.spareTs, b.spareVs
	b.mu.Unlock()
	b.spareTs, b.spareVs = nil, nil
	return len(b.tts)
}

// recycle returns the taken slices for reuse by the period after next.
func (b *seriesBuf) recycle() {
	if c := cap(b.tts); c <= maxSpare && c <= max(2*len(b.tts), minSpare) {
		b.spareTs, b.spareVs = b.tts[:0], b.tvs[:0]
	}
	b.tts, b.tvs = nil, nil
}

// sortTaken sorts the taken samples by time, keeping the arrival order of
// equal times (LAST must see the last one logged).
func (b *seriesBuf) sortTaken() {
	ts := b.tts
	for i := 1; i < len(ts); i++ {
		if ts[i] < ts[i-1] {
			sort.Stable(byTime{ts: b.tts, vs: b.tvs})
			return
		}
	}
}

type byTime struct {
	ts []int64
	vs []float64
}

func (s byTime) Len() int           { return len(s.ts) }
func (s byTime) Less(i, j int) bool { return s.ts[i] < s.ts[j] }
func (s byTime) Swap(i, j int) {
	s.ts[i], s.ts[j] = s.ts[j], s.ts[i]
	s.vs[i], s.vs[j] = s.vs[j], s.vs[i]
}

// index maps every watched series to its buffer. It is immutable once
// published through Monitor.idx; Observe reads it without a lock.
type index struct {
	// filter is a one-hash Bloom filter over the watched refs: a clear bit
	// proves a series is not watched without touching the map. At 32 to 64
	// bits per watched series, 2-3% of unwatched lookups reach the map.
	filter []uint64
	shift  uint
	bufs   map[tsdb.SeriesRef]*seriesBuf
}

func hashRef(r tsdb.SeriesRef) uint64 { return uint64(r) * 0x9E3779B97F4A7C15 }

func (ix *index) mayWatch(r tsdb.SeriesRef) bool {
	h := hashRef(r) >> ix.shift
	return ix.filter[h>>6]&(1<<(h&63)) != 0
}

// filterBits is log2 of the filter size for n refs: at least 32 bits each.
func filterBits(n int) int { return max(bits.Len(uint(n*32-1)), 6) }

func (ix *index) set(r tsdb.SeriesRef) {
	h := hashRef(r) >> ix.shift
	ix.filter[h>>6] |= 1 << (h & 63)
}

// derive returns a copy of old (nil: empty) with the series add watched
// and remove not. Buffers of series kept are the same pointers, so a
// sample appended through the old index by a concurrent Observe still
// reaches the next check. It costs one map copy, so registering many rules
// one by one stays cheap.
func derive(old *index, add, remove []tsdb.SeriesRef) *index {
	ix := &index{}
	if old != nil {
		ix.bufs = maps.Clone(old.bufs)
	} else {
		ix.bufs = make(map[tsdb.SeriesRef]*seriesBuf, len(add))
	}
	for _, r := range remove {
		delete(ix.bufs, r)
	}
	fresh := old != nil && len(remove) == 0
	for _, r := range add {
		if _, ok := ix.bufs[r]; !ok {
			ix.bufs[r] = &seriesBuf{ref: r}
		}
	}
	if len(ix.bufs) == 0 {
		return nil
	}
	nb := filterBits(len(ix.bufs))
	if fresh && nb == 64-int(old.shift) {
		// Only additions within the same size class: extend the old
		// filter instead of rehashing every ref.
		ix.filter, ix.shift = slices.Clone(old.filter), old.shift
		for _, r := range add {
			ix.set(r)
		}
		return ix
	}
	ix.filter, ix.shift = make([]uint64, 1<<(nb-6)), uint(64-nb)
	for r := range ix.bufs {
		ix.set(r)
	}
	return ix
}

// Observe hands the monitor samples that were just durably appended. It
// must be called once for every appended sample (any batch size, any
// series mix), and may be called concurrently from any number of
// goroutines. A sample of a series no rule watches costs a filter probe,
// no lock and no allocation; a watched sample is copied, so samples may be
// reused as soon as Observe returns.
//
// Watched samples wait in memory until the next check. When
// Options.MaxPending are waiting, further samples are dropped and counted
// (Stats.DroppedSamples) instead of growing memory without bound; however
// big a batch, only calls running at the same time may go past it, each
// by what it appends.
func (m *Monitor) Observe(samples []tsdb.Sample) {
	ix := m.idx.Load()
	if ix == nil {
		return
	}
	var added int64
	room := m.maxPending - m.pending.Load() // for this call: others add theirs
	for i := 0; i < len(samples); {
		ref := samples[i].Ref
		if !ix.mayWatch(ref) {
			i++
			continue
		}
		b := ix.bufs[ref]
		j := i + 1
		for j < len(samples) && samples[j].Ref == ref {
			j++
		}
		if b == nil {
			i = j
			continue
		}
		end := j
		if n := int64(j - i); n > room-added {
			keep := max(room-added, 0)
			m.droppedSamples.Add(uint64(n - keep))
			end = i + int(keep)
		}
		if end > i {
			b.mu.Lock()
			if !b.dead {
				for _, s := range samples[i:end] {
					b.ts = append(b.ts, s.T)
					b.vs = append(b.vs, s.V)
				}
				added += int64(end - i)
			}
			b.mu.Unlock()
		}
		i = j
	}
	if added > 0 {
		m.pending.Add(added)
	}
}

// updateIndex publishes a new index with add watched and remove not, and
// retires the buffers of the removed series. Called with m.mu held.
func (m *Monitor) updateIndex(add, remove []tsdb.SeriesRef) {
	old := m.idx.Load()
	m.idx.Store(derive(old, add, remove))
	if old == nil {
		return
	}
	for _, r := range remove {
		b := old.bufs[r]
		if b == nil {
			continue
		}
		// A concurrent Observe may still hold the old index: mark the
		// buffer dead under its lock so nothing more is appended, and
		// give back what it held.
		b.mu.Lock()
		b.dead = true
		n := len(b.ts)
		b.ts, b.vs = nil, nil
		b.mu.Unlock()
		m.pending.Add(-int64(n))
	}
}

// use counts a watched metric's refs in m.refUse and returns those not
// watched before. Called with m.mu held.
func (m *Monitor) use(refs []tsdb.SeriesRef) (added []tsdb.SeriesRef) {
	for _, r := range refs {
		m.refUse[r]++
		if m.refUse[r] == 1 {
			added = append(added, r)
		}
	}
	return added
}

// unuse undoes use and returns the refs no longer watched at all.
func (m *Monitor) unuse(refs []tsdb.SeriesRef) (removed []tsdb.SeriesRef) {
	for _, r := range refs {
		m.refUse[r]--
		if m.refUse[r] <= 0 {
			delete(m.refUse, r)
			removed = append(removed, r)
		}
	}
	return removed
}
