package query

import (
	"errors"
	"sync/atomic"
)

// ErrBusy is returned when the memory a query needs is not left in its
// Budget: other queries hold it. The query may be retried.
var ErrBusy = errors.New("queries running now hold all the memory for results")

// ErrTooLarge is returned when a query needs more memory than its whole
// Budget: it cannot be answered as asked, however long it waits.
var ErrTooLarge = errors.New("the query needs more memory than the query budget")

// A Budget bounds the memory that the queries running at once may take:
// their windows, their merges of several series and, as the caller
// charges them, their replies. Without one, a thousand connections each
// asking for a million windows would take tens of GB. A nil *Budget
// bounds nothing. It is safe for concurrent use.
type Budget struct {
	size    int64
	free    atomic.Int64
	refused atomic.Uint64
}

// NewBudget returns a budget of n bytes.
func NewBudget(n int64) *Budget {
	b := &Budget{size: n}
	b.free.Store(n)
	return b
}

// Take takes n bytes and reports whether they were left; a refusal is
// counted (Refused).
func (b *Budget) Take(n int64) bool {
	if b == nil || n <= 0 {
		return true
	}
	for {
		f := b.free.Load()
		if f < n {
			b.refused.Add(1)
			return false
		}
		if b.free.CompareAndSwap(f, f-n) {
			return true
		}
	}
}

// Charge takes n bytes for one use: ErrTooLarge when n is more than the
// whole budget, ErrBusy when it is not left.
func (b *Budget) Charge(n int64) error {
	c := charge{b: b}
	return c.grow(n)
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

// Refused returns how many times the budget refused a query.
func (b *Budget) Refused() uint64 {
	if b == nil {
		return 0
	}
	return b.refused.Load()
}

// charge is what one use (a result's windows, a merge) holds of a Budget.
type charge struct {
	b    *Budget
	held int64
}

// grow makes the charge need bytes, taking the difference: ErrTooLarge
// when need is more than the whole budget, ErrBusy when it is not left.
func (c *charge) grow(need int64) error {
	if c.b == nil || need <= c.held {
		return nil
	}
	if need > c.b.size {
		c.b.refused.Add(1)
		return ErrTooLarge
	}
	if !c.b.Take(need - c.held) {
		return ErrBusy
	}
	c.held = need
	return nil
}

// release gives back everything the charge holds.
func (c *charge) release() {
	c.b.Give(c.held)
	c.held = 0
}

// The sizes a charge counts: a window, an archive point read, a sample
// merged in memory (its time and value, copied twice, and its index), a
// series merged as it streams (an open scan with its decoded block), and
// what every executor may hold without charge, the room it keeps between
// queries anyway.
const (
	pointBytes     = 16
	aggregateBytes = 56
	mergedBytes    = 36
	streamedBytes  = 256 << 10
	freeBytes      = maxKept * pointBytes
)

// ReplyBytes is the most bytes the text of n windows takes in a QUERY
// reply (AppendPoints): 24 for the longest repr of a float, 2 for ", ".
func ReplyBytes(n int) int64 { return int64(n)*26 + 16 }
