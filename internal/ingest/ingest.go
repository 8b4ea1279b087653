// Package ingest is where samples from every entry point enter vigia: it
// stores them durably and then shows them to the alert monitor, so that an
// alert check sees exactly the acknowledged samples.
package ingest

import (
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// Store is the durable sample store. *tsdb.DB implements it.
type Store interface {
	Append(samples []tsdb.Sample) error
}

var _ Store = (*tsdb.DB)(nil)

// Observer sees samples once they are durable. *alert.Monitor implements
// it. Observe must not block and must not keep the slice.
type Observer interface {
	Observe(samples []tsdb.Sample)
}

// Pipeline stores samples and then hands them to its observers. It is safe
// for concurrent use.
type Pipeline struct {
	store     Store
	observers []Observer
}

// New returns a pipeline writing to store and notifying observers, in
// order, after each successful write.
func New(store Store, observers ...Observer) *Pipeline {
	return &Pipeline{store: store, observers: observers}
}

// Write stores samples durably (returning only once they survive a crash)
// and then passes them to every observer. Samples of a failed write are
// not observed.
func (p *Pipeline) Write(samples []tsdb.Sample) error {
	if err := p.store.Append(samples); err != nil {
		return err
	}
	for _, o := range p.observers {
		o.Observe(samples)
	}
	return nil
}
