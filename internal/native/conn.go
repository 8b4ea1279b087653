package native

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigia-mon/vigia/internal/native/wire"
	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// maxBatch bounds the LOG samples committed by one Write call.
const maxBatch = 4096

// flushAt is the size of pending reply bytes that are written out at once
// rather than when the connection runs out of buffered requests.
const flushAt = 64 << 10

// conn is one client connection. Its fields are owned by the goroutine
// running serve, except those guarded by wmu.
type conn struct {
	s  *Server
	nc net.Conn
	r  *bufio.Reader

	wmu  sync.Mutex // serializes writes to nc: replies and pushed ALERT lines
	werr error      // first write error, guarded by wmu

	stopping atomic.Bool

	req      wire.Request
	out      []byte        // replies not yet written
	batch    []tsdb.Sample // LOG samples not yet committed
	maxBatch int
	qx       query.Executor
	unsub    func()
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
	defer func() {
		if c.unsub != nil {
			c.unsub()
		}
		c.nc.Close()
	}()
	for {
		line, err := c.next()
		if line != nil {
			if herr := c.handle(line); herr != nil {
				c.finish()
				c.linger()
				return
			}
		}
		if err != nil {
			c.finish()
			c.closeErr(err)
			if err == errClose {
				c.linger()
			}
			return
		}
	}
}

// linger half-closes a connection the server ends (overload, a line too
// long, an error) and discards what the client still sends for a moment,
// so that the client reads the last reply rather than a reset caused by
// unread data.
func (c *conn) linger() {
	tc, ok := c.nc.(*net.TCPConn)
	if !ok || c.stopping.Load() {
		return
	}
	tc.CloseWrite()
	tc.SetReadDeadline(time.Now().Add(time.Second))
	io.CopyN(io.Discard, tc, 1<<20)
}

// finish commits the pending batch and writes every pending reply.
func (c *conn) finish() {
	c.commit()
	c.flush()
}

// closeErr records why a connection ended.
func (c *conn) closeErr(err error) {
	switch {
	case err == io.EOF, err == errClose:
	case errors.Is(err, os.ErrDeadlineExceeded):
		if !c.stopping.Load() {
			c.s.stats.timeouts.Add(1)
		}
	}
}

// next returns the next request line without its line ending. When no
// complete line is buffered it first commits the pending LOG batch and
// writes the pending replies, so that pipelined requests are answered in
// batches and a lone request at once. The line is valid until the next call
// and nil when there is none; an empty line is not nil.
func (c *conn) next() ([]byte, error) {
	if n := c.r.Buffered(); n > 0 {
		b, _ := c.r.Peek(n)
		if bytes.IndexByte(b, '\n') >= 0 {
			line, _ := c.r.ReadSlice('\n')
			return c.trim(line)
		}
	}
	cerr := c.commit()
	if err := c.flush(); err != nil {
		return nil, err
	}
	if cerr != nil {
		return nil, cerr
	}
	if c.stopping.Load() {
		return nil, errClose
	}
	if c.unsub == nil {
		c.nc.SetReadDeadline(time.Now().Add(c.s.opts.IdleTimeout))
	} else {
		// A subscriber may wait days for an alert: no idle timeout. A
		// dead peer is found by TCP keepalive or by a push's write
		// deadline.
		c.nc.SetReadDeadline(time.Time{})
	}
	line, err := c.r.ReadSlice('\n')
	switch {
	case err == nil:
		return c.trim(line)
	case err == bufio.ErrBufferFull:
		return nil, c.tooLong(line)
	case err == io.EOF && len(line) > 0:
		// A last request without its newline is still a request.
		l, terr := c.trim(line)
		if terr != nil {
			return nil, terr
		}
		return l, io.EOF
	}
	return nil, err
}

func (c *conn) trim(line []byte) ([]byte, error) {
	line = bytes.TrimSuffix(line, []byte{'\n'})
	line = bytes.TrimSuffix(line, []byte{'\r'})
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
	c.s.stats.bad.Add(1)
	c.commit()
	c.out = append(c.out, wire.UsageFor(wire.CommandOf(prefix[:min(len(prefix), 64)]))...)
	c.s.log.Debug("request line too long", "remote", c.nc.RemoteAddr().String())
	return errClose
}

// handle executes one request line. A non-nil error ends the connection.
func (c *conn) handle(line []byte) error {
	s := c.s
	s.stats.requests.Add(1)
	err := wire.Parse(line, &c.req)
	if err == nil && c.req.Cmd == wire.Log {
		return c.log()
	}
	if err := c.commit(); err != nil {
		return err
	}
	if err != nil {
		s.stats.bad.Add(1)
		c.out = append(c.out, wire.ReplyFor(err)...)
		return c.maybeFlush()
	}
	if !s.acquire(1) {
		return c.busy(1)
	}
	err = c.exec()
	s.release(1)
	if err != nil {
		return err
	}
	return c.maybeFlush()
}

// log adds a parsed LOG request to the batch.
func (c *conn) log() error {
	ref, err := c.s.opts.Store.GetOrCreate(c.req.ID, nil)
	if err != nil {
		if err := c.commit(); err != nil {
			return err
		}
		return c.internal(err)
	}
	t := c.req.T
	if !c.req.HasT {
		t = c.s.opts.Now().UnixMilli()
	}
	c.batch = append(c.batch, tsdb.Sample{Ref: ref, T: t, V: c.req.Value})
	if len(c.batch) >= c.maxBatch {
		return c.commit()
	}
	return nil
}

// commit writes the pending LOG batch to the store and queues a 201 for
// each of its requests, or a 503 for each and the end of the connection
// when the server or the store is overloaded.
func (c *conn) commit() error {
	n := len(c.batch)
	if n == 0 {
		return nil
	}
	s := c.s
	defer func() { c.batch = c.batch[:0] }()
	if !s.acquire(n) {
		return c.busy(n)
	}
	err := s.opts.Writer.Write(c.batch)
	s.release(n)
	switch {
	case err == nil:
		s.stats.samples.Add(uint64(n))
		for range n {
			c.out = append(c.out, wire.ReplyInserted...)
		}
		return nil
	case errors.Is(err, tsdb.ErrOverloaded), errors.Is(err, tsdb.ErrClosed):
		return c.busy(n)
	}
	s.log.Error("storing samples failed", "err", err, "samples", n)
	for range n {
		c.out = append(c.out, wire.ReplyInternal...)
	}
	return errClose
}

// busy answers n requests with the 503 line and ends the connection.
func (c *conn) busy(n int) error {
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

func (c *conn) maybeFlush() error {
	if len(c.out) >= flushAt {
		return c.flush()
	}
	return nil
}

// flush writes the pending replies.
func (c *conn) flush() error {
	if len(c.out) == 0 {
		return nil
	}
	err := c.write(c.out)
	if cap(c.out) > 1<<20 {
		c.out = nil // do not keep a huge QUERY reply's buffer
	} else {
		c.out = c.out[:0]
	}
	return err
}

// write writes b whole, within the write timeout.
func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.werr != nil {
		return c.werr
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.s.opts.WriteTimeout))
	if _, err := c.nc.Write(b); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			c.s.stats.timeouts.Add(1)
		}
		c.werr = err
		// Unblock the reader too: a client that does not read is gone.
		c.nc.SetReadDeadline(time.Now())
		return err
	}
	return nil
}
