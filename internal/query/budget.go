package query

import (
	"errors"
	"sync/atomic"
)

// ErrBusy is returned by Run when the memory its result would take is not
// left in Spec.Budget: other queries hold it. The query may be retried.
var ErrBusy = errors.New("queries running now hold all the memory for results")

// A Budget bounds the memory that the results of the queries running at
// once may take: their windows and, as the caller charges them, their
// replies. Without one, a thousand connections each asking for a million
// windows would take tens of GB. A nil *Budget bounds nothing. It is safe
// for concurrent use.
type Budget struct {
	free atomic.Int64
}

// NewBudget returns a budget of n bytes.
func NewBudget(n int64) *Budget {
	b := &Budget{}
	b.free.Store(n)
	return b
}

// Take takes n bytes and reports whether they were left.
func (b *Budget) Take(n int64) bool {
	if b == nil || n <= 0 {
		return true
	}
	for {
		f := b.free.Load()
		if f < n {
			return false
		}
		if b.free.CompareAndSwap(f, f-n) {
			return true
		}
	}
}

// Give returns n bytes taken before.
func (b *Budget) Give(n int64) {
	if b != nil && n > 0 {
		b.free.Add(n)
	}
}

// Free returns the bytes left.
func (b *Budget) Free() int64 {
	if b == nil {
		return 0
	}
	return b.free.Load()
}

// The sizes the charge of a result counts: a window, an archive point
// read, and what every executor may hold without charge, the room it
// keeps between queries anyway.
const (
	pointBytes     = 16
	aggregateBytes = 56
	freeBytes      = maxKept * pointBytes
)

// ReplyBytes is the most bytes the text of n windows takes in a QUERY
// reply (AppendPoints): 24 for the longest repr of a float, 2 for ", ".
func ReplyBytes(n int) int64 { return int64(n)*26 + 16 }
