package client

import (
	"math"
	"sync"
)

// backlog holds the collected points until they are delivered: a ring
// buffer in collection order that grows up to max points and then drops
// the oldest. It is safe for concurrent use.
type backlog struct {
	mu      sync.Mutex
	buf     []point
	head    int
	n       int
	max     int
	nextSeq uint64 // seq of the next point pushed; seqs start at 1

	dropped  uint64 // points dropped because the backlog was full
	invalid  uint64 // non-finite values never held
	reported uint64 // dropped as last reported in vigia.client.dropped
}

func newBacklog(max int) *backlog { return &backlog{max: max, nextSeq: 1} }

// at returns the i-th oldest point.
func (b *backlog) at(i int) *point { return &b.buf[(b.head+i)%len(b.buf)] }

// pushLocked appends p, dropping the oldest point if the backlog is full.
func (b *backlog) pushLocked(p point) {
	if math.IsNaN(p.v) || math.IsInf(p.v, 0) {
		b.invalid++
		return
	}
	p.seq = b.nextSeq
	b.nextSeq++
	if b.n == b.max {
		b.buf[b.head] = p
		b.head = (b.head + 1) % len(b.buf)
		b.dropped++
		return
	}
	if b.n == len(b.buf) {
		size := min(b.max, max(64, 2*len(b.buf)))
		buf := make([]point, size)
		for i := 0; i < b.n; i++ {
			buf[i] = *b.at(i)
		}
		b.buf, b.head = buf, 0
	}
	*b.at(b.n) = p
	b.n++
}

// push appends points and, when points were dropped since the last report,
// a point of dropName carrying the total dropped so far, stamped ts.
func (b *backlog) push(points []point, dropName string, ts int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, p := range points {
		b.pushLocked(p)
	}
	if b.dropped != b.reported {
		total := b.dropped
		if b.n == b.max {
			total++ // the report itself drops one more
		}
		b.pushLocked(point{name: dropName, v: float64(total), ts: ts})
		b.reported = b.dropped
	}
}

// peek copies up to limit of the oldest points into dst[:0].
func (b *backlog) peek(dst []point, limit int) []point {
	b.mu.Lock()
	defer b.mu.Unlock()
	dst = dst[:0]
	for i := 0; i < b.n && i < limit; i++ {
		dst = append(dst, *b.at(i))
	}
	return dst
}

// forget removes the points whose seq is at most seq: those delivered.
// Points are held in seq order, so they are at the head.
func (b *backlog) forget(seq uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for b.n > 0 && b.at(0).seq <= seq {
		*b.at(0) = point{}
		b.head = (b.head + 1) % len(b.buf)
		b.n--
	}
}

// lastSeq returns the seq of the newest point ever pushed, 0 if none.
func (b *backlog) lastSeq() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.nextSeq - 1
}

// holdsThrough reports whether a point with seq at most seq is still held.
func (b *backlog) holdsThrough(seq uint64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n > 0 && b.at(0).seq <= seq
}

// len returns the number of points held.
func (b *backlog) len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// snapshot returns copies of the held points accepted by keep (all if keep
// is nil), oldest first.
func (b *backlog) snapshot(keep func(name string) bool) []Point {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Point
	for i := 0; i < b.n; i++ {
		if p := b.at(i); keep == nil || keep(p.name) {
			out = append(out, p.public())
		}
	}
	return out
}

// remove drops the held points accepted by drop and returns how many.
func (b *backlog) remove(drop func(name string) bool) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	kept := 0
	for i := 0; i < b.n; i++ {
		if p := *b.at(i); !drop(p.name) {
			*b.at(kept) = p
			kept++
		}
	}
	for i := kept; i < b.n; i++ {
		*b.at(i) = point{}
	}
	removed := b.n - kept
	b.n = kept
	return removed
}

// counts returns the dropped and invalid totals.
func (b *backlog) counts() (dropped, invalid uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped, b.invalid
}
