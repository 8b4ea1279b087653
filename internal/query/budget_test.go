package query

import (
	"errors"
	"math"
	"testing"
)

// TestExecutorBudget: a result is charged to the budget as it grows, beyond
// the allowance every executor keeps anyway, until Release; a result that
// does not fit is ErrBusy (or ErrTooLarge, past the whole budget) and gives
// back what it took, and MaxPoints keeps its own error.
func TestExecutorBudget(t *testing.T) {
	st := &genStore{n: []int64{100_000}, start: []int64{0}, step: []int64{1000}}
	q := Spec{Name: []byte("m"), Op: Max, Step: 1000}

	big := NewBudget(1 << 30)
	var e Executor
	q.Budget = big
	pts, err := e.Run(st, q)
	if err != nil || len(pts) != 100_000 {
		t.Fatalf("%d points, %v", len(pts), err)
	}
	held := 1<<30 - big.Free()
	if min := int64(100_000*pointBytes - freeBytes); held < min {
		t.Fatalf("held %d bytes for 100,000 windows, want at least %d", held, min)
	}
	e.Release()
	if big.Free() != 1<<30 {
		t.Fatalf("after Release %d bytes free", big.Free())
	}

	small := NewBudget(1 << 20)
	q.Budget = small
	if _, err := e.Run(st, q); !errors.Is(err, ErrTooLarge) || small.Free() != 1<<20 {
		t.Fatalf("100,000 windows in 1 MiB: %v, %d bytes free; want ErrTooLarge", err, small.Free())
	}
	if !big.Take(1<<30 - 1<<20) {
		t.Fatal("Take")
	}
	q.Budget = big
	if _, err := e.Run(st, q); !errors.Is(err, ErrBusy) || big.Free() != 1<<20 {
		t.Fatalf("100,000 windows in a budget of 1 GiB with 1 MiB left: %v, %d bytes free; want ErrBusy", err, big.Free())
	}
	q.Budget = small
	q.Step = 100_000 // 1,000 windows: within the allowance
	if pts, err := e.Run(st, q); err != nil || len(pts) != 1000 || small.Free() != 1<<20 {
		t.Fatalf("1,000 windows: %d, %v, %d bytes free", len(pts), err, small.Free())
	}
	q.Step, q.MaxPoints = 1000, 10
	if _, err := e.Run(st, q); !errors.Is(err, ErrTooManyPoints) || small.Free() != 1<<20 {
		t.Fatalf("past MaxPoints: %v, %d bytes free", err, small.Free())
	}
}

// TestExecutorBudgetWhole: whether a query fits is judged on all it holds
// at once (a merge and its windows, or its windows and the reply the
// caller adds): on an idle budget, a query either fits or is ErrTooLarge,
// never ErrBusy, which no retry would get past.
func TestExecutorBudgetWhole(t *testing.T) {
	st := &genStore{n: []int64{100_000, 100_000}, start: []int64{0, 500}, step: []int64{1000, 1000}}
	q := Spec{Name: []byte("m"), Op: Max, Step: 1000}
	fitted := false // in a smaller budget
	for _, size := range []int64{1 << 20, 2 << 20, 4 << 20, 6 << 20, 8 << 20, 10 << 20, 16 << 20} {
		var e Executor
		q.Budget = NewBudget(size)
		pts, err := e.Run(st, q)
		if errors.Is(err, ErrBusy) || err == nil && len(pts) != 100_000 || err != nil && (fitted || size == 16<<20) {
			t.Errorf("budget %d MiB, idle: %d points, %v (fitted a smaller budget: %v)", size>>20, len(pts), err, fitted)
		}
		fitted = fitted || err == nil
		if err == nil {
			// A reply the caller adds to the same charge.
			if err := e.Charge().Add(ReplyBytes(len(pts))); errors.Is(err, ErrBusy) {
				t.Errorf("budget %d MiB, idle: the reply's charge: %v", size>>20, err)
			}
		}
		e.Release()
		if q.Budget.Free() != size {
			t.Errorf("budget %d MiB: %d bytes free after Release", size>>20, q.Budget.Free())
		}
	}
}

// TestReplyBytes: ReplyBytes bounds the reply text of the longest values.
func TestReplyBytes(t *testing.T) {
	pts := make([]Point, 1000)
	for i := range pts {
		pts[i].Value = -math.SmallestNonzeroFloat64 * 1e15 // -4.940656458412465e-309
		if i%2 == 1 {
			pts[i].Value = -2.2250738585072014e-308
		}
	}
	for _, op := range []Op{Max, Avg, Count} {
		if got := len(AppendPoints(nil, op, pts)); int64(got) > ReplyBytes(len(pts)) {
			t.Errorf("%v: %d bytes, ReplyBytes %d", op, got, ReplyBytes(len(pts)))
		}
	}
}

// TestScanMergedBudget: merging several series in memory, or as they
// stream, is charged while it runs and given back after; a budget too
// small for the merge in memory streams; one that others hold is ErrBusy.
func TestScanMergedBudget(t *testing.T) {
	st := &genStore{n: []int64{100_000, 100_000}, start: []int64{0, 500}, step: []int64{1000, 1000}}
	refs := st.RefsByName(nil)
	b := NewBudget(1 << 30)
	n := 0
	err := ScanMerged(st, refs, 0, math.MaxInt64, b.NewCharge(), func(ts []int64, vs []float64) bool {
		if b.Free() > 1<<30-200_000*pointBytes { // the merged copy, while fn runs
			t.Errorf("200,000 samples merged in memory hold %d bytes of the budget", 1<<30-b.Free())
		}
		n += len(ts)
		return true
	})
	if err != nil || n != 200_000 || b.Free() != 1<<30 {
		t.Fatalf("%d samples, %v, %d bytes free after", n, err, b.Free())
	}
	b = NewBudget(1 << 20)
	n = 0
	err = ScanMerged(st, refs, 0, math.MaxInt64, b.NewCharge(), func(ts []int64, vs []float64) bool { n += len(ts); return true })
	if err != nil || n != 200_000 || b.Free() != 1<<20 {
		t.Fatalf("200,000 samples in a 1 MiB budget: %d, %v, %d bytes free", n, err, b.Free())
	}
	tiny := NewBudget(streamedBytes)
	err = ScanMerged(st, refs, 0, math.MaxInt64, tiny.NewCharge(), func([]int64, []float64) bool { return true })
	if !errors.Is(err, ErrTooLarge) || tiny.Free() != streamedBytes {
		t.Fatalf("in a budget of one open scan: %v, %d bytes free; want ErrTooLarge", err, tiny.Free())
	}

	// Eight small series merge in memory in a budget smaller than eight
	// open scans: while others hold it, that is ErrBusy (it fits once they
	// are done), not ErrTooLarge.
	var eight genStore
	for i := range 8 {
		eight.n, eight.start, eight.step = append(eight.n, 1000), append(eight.start, int64(i)), append(eight.step, 1000)
	}
	const size = 1900 << 10 // under 8 open scans of 256 KiB
	b = NewBudget(size)
	if err := ScanMerged(&eight, eight.RefsByName(nil), 0, math.MaxInt64, b.NewCharge(), func([]int64, []float64) bool { return true }); err != nil {
		t.Fatalf("8,000 samples in an idle budget: %v", err)
	}
	b.Take(size - 64<<10)
	if err := ScanMerged(&eight, eight.RefsByName(nil), 0, math.MaxInt64, b.NewCharge(), func([]int64, []float64) bool { return true }); !errors.Is(err, ErrBusy) {
		t.Fatalf("8,000 samples with 64 KiB left: %v, want ErrBusy", err)
	}
}
