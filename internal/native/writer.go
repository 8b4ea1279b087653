package native

import (
	"errors"
	"os"
	"time"

	"github.com/vigia-mon/vigia/internal/native/wire"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// writer is a connection's second goroutine. It takes units in request
// order, commits their batches to the store (so a connection's samples are
// stored in the order they were sent; batches queued together go in one
// commit), and writes the replies, batching them into one write whenever
// no unit is waiting. After SUBSCRIBE it also writes the pushed ALERT
// lines between replies. It returns when the reader closes the queue.
func (c *conn) writer() {
	defer close(c.werrDone)
	var (
		buf    []byte
		events <-chan [][]byte
		failed bool // a batch was refused or a write failed: answer and commit nothing more
	)
	send := func(b []byte) {
		if len(b) == 0 || failed {
			return
		}
		if err := c.write(b); err != nil {
			c.fail()
			failed = true
		}
	}
	flush := func() {
		send(buf)
		if cap(buf) > 1<<20 {
			buf = nil // do not keep the room of a rare burst (of ALERT lines)
		} else {
			buf = buf[:0]
		}
	}
	var (
		held   *unit // taken from the queue but not joined: handled next
		closed bool  // the queue is closed and empty
	)
	for {
		var u *unit
		switch {
		case held != nil:
			u, held = held, nil
		case closed:
		default:
			if len(c.queue) == 0 {
				flush()
			}
			select {
			case u = <-c.queue:
			case evs, ok := <-events:
				if !ok {
					events = nil
					continue
				}
				for _, ev := range evs {
					buf = append(append(append(buf, "ALERT "...), ev...), '\n')
				}
				continue
			}
		}
		if u == nil {
			flush()
			return
		}
		if len(u.out) > maxKeptOut {
			// A big reply (a QUERY's) is written as it is: copied into
			// buf, its room would stay with the idle connection.
			flush()
			send(u.out)
		} else if !failed {
			buf = append(buf, u.out...)
		}
		if len(u.batch) == 0 {
			if u.events != nil {
				events = u.events
			}
			c.recycle(u)
			if len(buf) >= flushAt {
				flush()
			}
			continue
		}
		var batch []tsdb.Sample
		batch, held, closed = c.joinQueued(u)
		if !failed {
			// The commit waits for an fsync: send what is ready first.
			flush()
		}
		if !failed {
			var ok bool
			if buf, ok = c.commit(buf, batch); !ok {
				// Answer these batches' requests with their 503s
				// or 500s, and nothing after them.
				flush()
				failed = true
			}
		}
		for _, v := range c.group {
			c.s.release(len(v.batch))
			close(v.committed)
			if v.events != nil {
				events = v.events
			}
			c.recycle(v)
		}
		clear(c.group)
		if len(buf) >= flushAt {
			flush()
		}
	}
}

// maxJoin bounds the samples of the batches joinQueued joins.
const maxJoin = 4 * maxBatch

// joinQueued sets c.group to u and the units of LOGs only queued behind it,
// taken without waiting, and returns their batches joined: the reader
// parses while a commit waits for its fsync, and the batches it queued
// meanwhile then wait for one fsync, not one each. It also returns the
// first unit taken that cannot join (it carries other replies first, or no
// batch), to be handled next, and whether it found the queue closed.
func (c *conn) joinQueued(u *unit) (batch []tsdb.Sample, next *unit, closed bool) {
	c.group = append(c.group[:0], u)
	batch = u.batch
	for len(batch) < maxJoin {
		var v *unit
		ok := true
		select {
		case v, ok = <-c.queue:
		default:
		}
		if !ok {
			return batch, nil, true
		}
		if v == nil {
			break
		}
		if len(v.out) > 0 || len(v.batch) == 0 || v.events != nil {
			return batch, v, false
		}
		if len(c.group) == 1 {
			c.joined = append(c.joined[:0], u.batch...)
		}
		c.joined = append(c.joined, v.batch...)
		batch = c.joined
		c.group = append(c.group, v)
	}
	if cap(c.joined) > 2*maxJoin {
		c.joined = nil
	}
	return batch, nil, false
}

// commit stores a batch and appends its replies to buf: a 201 for each
// sample, or a 503 (store overloaded or closing) or 500 (store failure) for
// each, after which the connection ends. It reports whether the batch was
// stored.
func (c *conn) commit(buf []byte, batch []tsdb.Sample) ([]byte, bool) {
	s := c.s
	n := len(batch)
	err := s.opts.Writer.Write(batch)
	var reply []byte
	switch {
	case err == nil:
		s.stats.samples.Add(uint64(n))
		reply = wire.ReplyInserted
	case errors.Is(err, tsdb.ErrOverloaded), errors.Is(err, tsdb.ErrClosed):
		s.stats.busy.Add(uint64(n))
		reply = wire.ReplyBusy
		c.fail()
	default:
		s.logStoreFailure(err, n)
		reply = wire.ReplyInternal
		c.fail()
	}
	for range n {
		buf = append(buf, reply...)
	}
	return buf, err == nil
}

// fail makes the reader stop: the connection ends once the replies so far
// are written.
func (c *conn) fail() {
	c.failed.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

// maxKeptOut bounds the reply buffer a unit keeps for reuse. The reader
// hands its replies over once they pass flushAt, so only a big reply (a
// QUERY's, a METRICS') makes a buffer grow beyond: its room is let go,
// not kept by a connection that may idle for hours.
const maxKeptOut = 2 * flushAt

// recycle returns a unit's buffers for the reader to reuse, unless they
// grew large.
func (c *conn) recycle(u *unit) {
	c.s.opts.QueryBudget.Give(u.charge)
	u.charge = 0
	if cap(u.out) > maxKeptOut {
		u.out = nil
	}
	if cap(u.batch) > 2*maxBatch {
		u.batch = nil
	}
	u.events = nil
	u.committed = nil
	select {
	case c.free <- u:
	default:
	}
}

// write writes b whole, within the write timeout.
func (c *conn) write(b []byte) error {
	c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
	if _, err := c.nc.Write(b); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.s.stats.timeouts.Add(1)
		}
		return err
	}
	return nil
}
