package ingest

import (
	"errors"
	"testing"

	"github.com/vigia-mon/vigia/internal/tsdb"
)

type storeFunc func([]tsdb.Sample) error

func (f storeFunc) Append(s []tsdb.Sample) error { return f(s) }

type observerFunc func([]tsdb.Sample)

func (f observerFunc) Observe(s []tsdb.Sample) { f(s) }

func TestObserversSeeOnlyStoredSamples(t *testing.T) {
	var stored, seen [][]tsdb.Sample
	fail := errors.New("disk full")
	var next error
	p := New(
		storeFunc(func(s []tsdb.Sample) error {
			if next != nil {
				return next
			}
			stored = append(stored, s)
			return nil
		}),
		observerFunc(func(s []tsdb.Sample) {
			if len(stored) == 0 || &stored[len(stored)-1][0] != &s[0] {
				t.Error("observed before it was stored")
			}
			seen = append(seen, s)
		}),
	)
	batch := []tsdb.Sample{{Ref: 1, T: 1, V: 1}}
	if err := p.Write(batch); err != nil {
		t.Fatal(err)
	}
	next = fail
	if err := p.Write([]tsdb.Sample{{Ref: 1, T: 2, V: 2}}); !errors.Is(err, fail) {
		t.Fatalf("error %v, want %v", err, fail)
	}
	if len(seen) != 1 || len(stored) != 1 {
		t.Fatalf("stored %d batches, observed %d; want 1 and 1", len(stored), len(seen))
	}
}
