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

// CountRefusal counts a query answered with a refusal (ErrBusy or
// ErrTooLarge), for Refused.
func (b *Budget) CountRefusal() {
	if b != nil {
		b.refused.Add(1)
	}
}

// Refused returns how many queries were refused (CountRefusal).
func (b *Budget) Refused() uint64 {
	if b == nil {
		return 0
	}
	return b.refused.Load()
}

// NewCharge returns an empty charge of b.
func (b *Budget) NewCharge() *Charge { return &Charge{b: b} }

// A Charge is what one query holds of a Budget: its windows, a merge of
// several series and its reply together, so that whether the query could
// fit at all is judged on the whole of it. A Charge of a nil Budget bounds
// nothing. It is not safe for concurrent use.
type Charge struct {
	b    *Budget
	held int64
}

// Add takes n more bytes: ErrTooLarge when the charge would be more than
// the whole budget, ErrBusy when the bytes are not left (other queries
// hold them).
func (c *Charge) Add(n int64) error {
	if c == nil || c.b == nil || n <= 0 {
		return nil
	}
	if c.held+n > c.b.size {
		return ErrTooLarge
	}
	if !c.b.Take(n) {
		return ErrBusy
	}
	c.held += n
	return nil
}

// raise brings *part, the share of the charge one use holds, up to need,
// adding the difference.
func (c *Charge) raise(part *int64, need int64) error {
	if need <= *part {
		return nil
	}
	if err := c.Add(need - *part); err != nil {
		return err
	}
	*part = need
	return nil
}

// Give gives back n of the bytes held.
func (c *Charge) Give(n int64) {
	if c == nil {
		return
	}
	n = min(n, c.held)
	c.b.Give(n)
	c.held -= n
}

// Hand takes n of the bytes held out of the charge without giving them
// back: the caller keeps them taken, and gives them back to the budget
// (Budget.Give) when done.
func (c *Charge) Hand(n int64) {
	if c != nil {
		c.held -= min(n, c.held)
	}
}

// Release gives back every byte held.
func (c *Charge) Release() {
	if c != nil {
		c.Give(c.held)
	}
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
