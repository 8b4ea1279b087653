package native

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"github.com/vigia-mon/vigia/internal/native/wire"
	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// maxBatch bounds the LOG samples committed by one Write call.
const maxBatch = 4096

// flushAt is the size of pending reply bytes that are handed to the writer
// at once rather than when the connection runs out of buffered requests.
const flushAt = 64 << 10

// queueLen bounds the units of work waiting for a connection's writer: with
// one being committed, a reader keeps parsing the next batch while the
// previous one waits for its fsync, and at most 2 batches wait per
// connection.
const queueLen = 2

// conn is one client connection, served by two goroutines: the reader
// (serve) parses requests and executes all but LOG, and the writer commits
// LOG batches to the store, in order, and writes every reply, in order.
// Fields are owned by the reader unless said otherwise.
type conn struct {
	s  *Server
	nc net.Conn
	r  *bufio.Reader

	stopping atomic.Bool // Shutdown asked the connection to end
	failed   atomic.Bool // the writer failed (a write, or a batch the store refused): stop reading
	closing  bool        // the reader refused a request with 503: stop reading

	req      wire.Request
	out      []byte        // replies not yet handed to the writer
	batch    []tsdb.Sample // LOG samples not yet handed to the writer
	maxBatch int
	// Series the batch's LOGs name that do not exist yet: created only
	// once the batch is admitted (submitBatch), so that a LOG refused
	// with 503 leaves nothing behind. Their samples carry ref 0 until
	// then. newNames lists the names, newIndex maps a name to its place
	// in newNames, and newAt gives each such sample's place in the batch
	// and its name's in newNames.
	newNames []string
	newIndex map[string]int
	newAt    []newSample
	qx       query.Executor
	unsub    func()

	queue    chan *unit    // to the writer
	lastDone chan struct{} // committed channel of the last batch handed to the writer
	free     chan *unit    // units the writer is done with, for reuse
	werrDone chan struct{} // closed when the writer returns

	// Owned by the writer: the units of one commit, and their batches
	// joined when there is more than one (see joinQueued).
	group  []*unit
	joined []tsdb.Sample
}

// unit is what the reader hands to the writer: reply bytes, then the
// replies of a batch of LOGs once committed.
type unit struct {
	out       []byte
	charge    int64 // of the query budget, held by out until it is sent
	batch     []tsdb.Sample
	events    <-chan [][]byte // SUBSCRIBE: push these from now on, a check's notifications at a time
	committed chan struct{}   // closed once batch is committed or given up
}

func newConn(s *Server, nc net.Conn) *conn {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return &conn{
		s:        s,
		nc:       nc,
		r:        bufio.NewReaderSize(nc, MaxLine+2),
		maxBatch: min(maxBatch, s.opts.MaxInflight),
		queue:    make(chan *unit, queueLen),
		free:     make(chan *unit, queueLen+2),
		werrDone: make(chan struct{}),
	}
}

// stop asks serve to finish the requests it has read and return.
func (c *conn) stop() {
	c.stopping.Store(true)
	c.nc.SetReadDeadline(time.Now())
}

// errClose ends serve after the replies so far are written.
var errClose = errors.New("close connection")

func (c *conn) serve() {
	go c.writer()
	err := c.readLoop()
	c.submit()
	close(c.queue)
	<-c.werrDone
	if c.unsub != nil {
		c.unsub()
	}
	switch {
	case err == errClose || c.failed.Load():
		c.linger()
	case err == io.EOF:
	case errors.Is(err, os.ErrDeadlineExceeded):
		if c.stopping.Load() {
			// Shutdown: requests not read yet stay unanswered, but the
			// replies written must reach the client, not a reset.
			c.linger()
		} else {
			c.s.stats.timeouts.Add(1)
		}
	}
	c.nc.Close()
}

// readLoop reads and handles requests until the connection ends.
func (c *conn) readLoop() error {
	for {
		line, err := c.next()
		if line != nil {
			if herr := c.handle(line); herr != nil {
				return herr
			}
		}
		if err == errUnterminated {
			c.refuseLast(wire.ReplyUnterminated)
			return io.EOF
		}
		if err != nil {
			return err
		}
		if c.closing || c.failed.Load() {
			return errClose
		}
	}
}

// linger half-closes a connection the server ends (overload, a line too
// long, an error, a shutdown) and discards what the client still sends for
// a moment, so that the client reads the last reply rather than a reset
// caused by unread data.
func (c *conn) linger() {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok {
		return
	}
	tc.CloseWrite()
	// Closing with unread data would reset the connection, and a reset
	// discards the replies still in the socket's send queue: read until
	// the client closes its side, or for a second at most.
	tc.SetReadDeadline(time.Now().Add(time.Second))
	io.Copy(io.Discard, tc)
}

// next returns the next request line without its line ending. When no
// complete line is buffered it first hands the pending batch and replies
// to the writer, so that pipelined requests are answered in batches and a
// lone request at once. The line is valid until the next call and nil when
// there is none; an empty line is not nil.
func (c *conn) next() ([]byte, error) {
	if n := c.r.Buffered(); n > 0 {
		b, _ := c.r.Peek(n)
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			c.r.Discard(i + 1)
			return c.trim(b[:i])
		}
	}
	c.submit()
	if c.unsub == nil {
		c.nc.SetReadDeadline(time.Now().Add(c.s.opts.IdleTimeout))
	} else {
		// A subscriber may wait days for an alert: no idle timeout. A
		// dead peer is found by TCP keepalive or by a push's write
		// deadline.
		c.nc.SetReadDeadline(time.Time{})
	}
	// Checked after setting the deadline: stop and fail set their flag
	// before they set a past deadline, so one of the two is seen.
	if c.stopping.Load() || c.closing || c.failed.Load() {
		return nil, errClose
	}
	line, err := c.r.ReadSlice('\n')
	switch {
	case err == nil:
		return c.trim(line[:len(line)-1])
	case err == bufio.ErrBufferFull:
		return nil, c.tooLong(line)
	case err == io.EOF && len(bytes.Trim(line, " \t\r")) > 0:
		// A last request without its newline may be a line cut short by
		// a client that stopped in the middle of a write ("LOG t 12" of
		// "LOG t 123.5"): it is answered, not executed. Blanks (the
		// spaces and tabs that separate tokens, a CR) are no request;
		// other bytes, a form feed say, are, as with their newline.
		return nil, errUnterminated
	}
	return nil, err
}

// errUnterminated ends a connection whose last request had no newline.
var errUnterminated = errors.New("request without its newline at the end of the connection")

// trim drops a '\r' ending and enforces the line limit.
func (c *conn) trim(line []byte) ([]byte, error) {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > MaxLine {
		return nil, c.tooLong(line)
	}
	if len(line) == 0 {
		// An empty line is an unknown command, answered like FOO.
		return []byte{}, nil
	}
	return line, nil
}

// tooLong answers a line over MaxLine with its command's usage line and
// ends the connection: the rest of the line cannot be told from the next
// request.
func (c *conn) tooLong(prefix []byte) error {
	c.s.stats.longLines.Add(1)
	prefix = bytes.TrimLeft(prefix, " \t") // blanks may come before the command
	c.refuseLast(wire.UsageFor(wire.CommandOf(prefix[:min(len(prefix), 64)])))
	c.s.log.Debug("request line too long", "remote", c.nc.RemoteAddr().String())
	return errClose
}

// refuseLast answers the last request of the connection, one it does not
// execute (a line too long, or cut by the connection's end), with reply.
// next submitted the batch before the read that found it.
func (c *conn) refuseLast(reply []byte) {
	c.s.stats.requests.Add(1)
	c.s.stats.bad.Add(1)
	c.out = append(c.out, reply...)
}

// handle executes one request line. A non-nil error ends the connection.
func (c *conn) handle(line []byte) error {
	s := c.s
	s.stats.requests.Add(1)
	err := wire.Parse(line, &c.req)
	if err == nil && c.req.Cmd == wire.Log {
		return c.log()
	}
	// Replies stay in request order: the LOGs before this request are
	// answered first.
	c.submitBatch()
	if c.closing {
		return errClose // the batch was refused: what follows gets no reply
	}
	if err != nil {
		s.stats.bad.Add(1)
		c.out = append(c.out, wire.ReplyFor(err)...)
		c.maybeSubmit()
		return nil
	}
	// Requests that read see every LOG sent before them.
	if err := c.awaitCommits(); err != nil {
		return err
	}
	if !s.acquire(1) {
		return c.busy(1)
	}
	err = c.exec()
	s.release(1)
	c.maybeSubmit()
	return err
}

// log adds a parsed LOG request to the batch.
func (c *conn) log() error {
	st := c.s.opts.Store
	ref, ok := st.Lookup(c.req.ID, nil)
	if !ok {
		k, pending := c.newIndex[string(c.req.ID)]
		if !pending {
			// Reserve the series against --max-series with the server,
			// since every connection's pending new series count.
			if int(c.s.newSeries.Add(1))+st.NumSeries() > c.s.opts.MaxSeries {
				c.s.newSeries.Add(-1)
				c.submitBatch() // creates the batch's new series, if admitted
				if c.closing {
					return nil // refused with 503: the connection ends
				}
				if ref, ok = st.Lookup(c.req.ID, nil); ok {
					return c.appendSample(ref)
				}
				if int(c.s.newSeries.Add(1))+st.NumSeries() > c.s.opts.MaxSeries {
					c.s.newSeries.Add(-1)
					c.s.stats.seriesLimit.Add(1)
					c.s.stats.bad.Add(1)
					c.out = fmt.Appendf(c.out, "400 Bad Request -- too many series: this server keeps at most %d (--max-series)\n", c.s.opts.MaxSeries)
					return nil
				}
			}
			if c.newIndex == nil {
				c.newIndex = make(map[string]int)
			}
			k = len(c.newNames)
			c.newNames = append(c.newNames, string(c.req.ID))
			c.newIndex[c.newNames[k]] = k
		}
		c.newAt = append(c.newAt, newSample{at: len(c.batch), name: k})
	}
	return c.appendSample(ref)
}

// newSample is a sample of a series created when its batch is admitted.
type newSample struct {
	at   int // in conn.batch
	name int // in conn.newNames
}

// appendSample adds the parsed LOG's sample, of series ref, to the batch.
func (c *conn) appendSample(ref tsdb.SeriesRef) error {
	t := c.req.T
	if !c.req.HasT {
		t = c.s.opts.Now().UnixMilli()
	}
	c.batch = append(c.batch, tsdb.Sample{Ref: ref, T: t, V: c.req.Value})
	if len(c.batch) >= c.maxBatch {
		c.submitBatch()
	}
	return nil
}

// getUnit returns a unit for reuse or a new one.
func (c *conn) getUnit() *unit {
	select {
	case u := <-c.free:
		return u
	default:
		return &unit{}
	}
}

// submitBatch hands the replies so far and the pending batch, if there is
// one, to the writer. A batch beyond the in-flight bound is answered with
// 503s instead, and the connection ends.
func (c *conn) submitBatch() {
	if len(c.batch) == 0 {
		return
	}
	n := len(c.batch)
	if !c.s.acquire(n) && !c.acquireAfterCommits(n) {
		c.batch = c.batch[:0]
		c.dropNewSeries()
		if c.failed.Load() {
			// The writer failed meanwhile: nothing more is answered, so
			// this batch is not refused for want of room either.
			c.closing = true
			return
		}
		c.busy(n)
		return
	}
	if len(c.newAt) > 0 {
		if err := c.createNewSeries(); err != nil {
			c.s.release(n)
			c.batch = c.batch[:0]
			c.s.log.Error("request failed", "cmd", "LOG", "err", err)
			for range n {
				c.out = append(c.out, wire.ReplyInternal...)
			}
			c.closing = true
		}
	}
	c.submitUnit(nil, 0)
}

// acquireAfterCommits waits until the batches handed to the writer are
// committed, which gives their in-flight slots back, and tries again to
// take n. A client that pipelines many LOGs fills the bound with its own
// batches: it is held back by its commits, as by its fsyncs, and refused
// only when other connections' requests leave no room.
func (c *conn) acquireAfterCommits(n int) bool {
	if c.lastDone == nil {
		return false
	}
	c.waitCommitted()
	return !c.failed.Load() && c.s.acquire(n)
}

// waitCommitted waits until every batch handed to the writer is committed.
func (c *conn) waitCommitted() {
	if c.lastDone != nil {
		<-c.lastDone
		c.lastDone = nil
	}
}

// createNewSeries creates the series the batch names that did not exist
// when its LOGs were read, and gives their samples the refs.
func (c *conn) createNewSeries() error {
	defer c.dropNewSeries()
	refs := make([]tsdb.SeriesRef, len(c.newNames))
	for k, name := range c.newNames {
		ref, err := c.s.opts.Store.GetOrCreate([]byte(name), nil)
		if err != nil {
			return err
		}
		refs[k] = ref
	}
	for _, ns := range c.newAt {
		c.batch[ns.at].Ref = refs[ns.name]
	}
	return nil
}

// dropNewSeries forgets the batch's new series, created or not, and their
// reservations.
func (c *conn) dropNewSeries() {
	c.s.newSeries.Add(-int64(len(c.newNames)))
	clear(c.newNames)
	c.newNames = c.newNames[:0]
	clear(c.newIndex)
	c.newAt = c.newAt[:0]
}

// submit hands everything pending to the writer.
func (c *conn) submit() {
	c.submitBatch()
	if len(c.out) > 0 {
		c.submitUnit(nil, 0)
	}
}

// submitUnit queues the pending replies and batch (and a subscription's
// events) for the writer, with charge, what the replies hold of the query
// budget, and takes fresh buffers.
func (c *conn) submitUnit(events <-chan [][]byte, charge int64) {
	u := c.getUnit()
	u.out, c.out = c.out, u.out[:0]
	u.charge = charge
	u.batch, c.batch = c.batch, u.batch[:0]
	u.events = events
	u.committed = nil
	if len(u.batch) > 0 {
		u.committed = make(chan struct{})
		c.lastDone = u.committed
	}
	c.queue <- u
}

// awaitCommits submits the pending batch and waits until every batch
// handed to the writer is committed.
func (c *conn) awaitCommits() error {
	c.submitBatch()
	c.waitCommitted()
	if c.closing || c.failed.Load() {
		return errClose
	}
	return nil
}

// maybeSubmit hands the replies to the writer once they are large.
func (c *conn) maybeSubmit() {
	if len(c.out) >= flushAt {
		c.submit()
	}
}

// busy answers n requests with the 503 line and ends the connection.
func (c *conn) busy(n int) error {
	c.closing = true
	c.s.stats.busy.Add(uint64(n))
	for range n {
		c.out = append(c.out, wire.ReplyBusy...)
	}
	return errClose
}

// internal answers one request with a 500 after an unexpected error.
func (c *conn) internal(err error) error {
	c.s.log.Error("request failed", "cmd", c.req.Cmd.String(), "err", err)
	c.out = append(c.out, wire.ReplyInternal...)
	return nil
}
