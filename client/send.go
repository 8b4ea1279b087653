package client

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// maxBatch bounds the points copied out of the backlog for one round of
// sending; a larger backlog goes in several rounds on the same connection.
const maxBatch = 1 << 15

// sender delivers the backlog: after each collection, on a retry timer
// after a failure, and at once for Flush and Close. One goroutine (run)
// does all the I/O.
type sender struct {
	c      *Client
	kickC  chan struct{}
	flushC chan *flushReq
	ctx    context.Context // canceled by stop; aborts a delivery in progress
	cancel context.CancelFunc
	quit   chan struct{}
	done   chan struct{}

	// Owned by the run goroutine.
	conn  net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	batch []point
	// window is the number of LOG lines let in flight, at most
	// MaxInFlight: halved when the server answers 503 busy (its bound on
	// requests in flight may be lower than ours), grown back a quarter at
	// a time by attempts that succeed.
	window int

	mu         sync.Mutex
	delivered  uint64
	rejected   uint64
	failures   uint64
	unanswered uint64
	lastErr    error
}

// flushReq asks the sender to deliver every point up to seq; done is
// closed once none is held.
type flushReq struct {
	ctx  context.Context
	seq  uint64
	done chan struct{}
}

func newSender(c *Client) *sender {
	ctx, cancel := context.WithCancel(context.Background())
	return &sender{
		c:      c,
		kickC:  make(chan struct{}, 1),
		flushC: make(chan *flushReq),
		ctx:    ctx,
		cancel: cancel,
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		window: c.opts.MaxInFlight,
		br:     bufio.NewReaderSize(nil, 4096),
		bw:     bufio.NewWriterSize(nil, 64<<10),
	}
}

// kick tells the sender that new points were collected.
func (s *sender) kick() {
	select {
	case s.kickC <- struct{}{}:
	default:
	}
}

// flush waits until no point with a seq up to seq is held, or ctx is done.
func (s *sender) flush(ctx context.Context, seq uint64) error {
	if !s.c.backlog.holdsThrough(seq) {
		return nil
	}
	req := &flushReq{ctx: ctx, seq: seq, done: make(chan struct{})}
	select {
	case s.flushC <- req:
	case <-ctx.Done():
		return s.flushErr(ctx)
	case <-s.done:
		return ErrClosed
	}
	select {
	case <-req.done:
		return nil
	case <-ctx.Done():
		return s.flushErr(ctx)
	case <-s.done:
		// Close stopped the sender, which closes no waiter on its way
		// out.
		if !s.c.backlog.holdsThrough(seq) {
			return nil
		}
		return ErrClosed
	}
}

func (s *sender) flushErr(ctx context.Context) error {
	s.mu.Lock()
	last := s.lastErr
	s.mu.Unlock()
	if last == nil {
		return fmt.Errorf("flush: %w", ctx.Err())
	}
	return fmt.Errorf("flush: %w (last delivery error: %w)", ctx.Err(), last)
}

// stop aborts any delivery in progress and waits for run to return.
func (s *sender) stop() {
	s.cancel()
	close(s.quit)
	<-s.done
}

func (s *sender) stats(st *Stats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st.Delivered, st.Rejected, st.Failures, st.LastError = s.delivered, s.rejected, s.failures, s.lastErr
	st.Unanswered = s.unanswered
}

// flushRetry caps the delay between attempts while a Flush or Close waits.
const flushRetry = 200 * time.Millisecond

func (s *sender) run() {
	defer close(s.done)
	defer s.closeConn()
	var (
		failures int
		retry    <-chan time.Time // non-nil while backing off
		waiters  []*flushReq
	)
	for {
		select {
		case <-s.quit:
			return
		case <-s.kickC:
			if retry != nil {
				continue // backing off; the retry timer will send
			}
		case <-retry:
			retry = nil
		case r := <-s.flushC:
			waiters = append(waiters, r)
		}
		err := s.deliver()
		s.mu.Lock()
		s.lastErr = err
		if err != nil {
			s.failures++
		}
		s.mu.Unlock()
		if err == nil {
			if failures > 0 {
				s.c.log.Info("delivery recovered", "failed_attempts", failures)
			}
			failures, retry = 0, nil
		} else {
			failures++
			d := s.backoff(failures)
			if len(waiters) > 0 {
				d = min(d, flushRetry)
			}
			d = d/2 + rand.N(d/2+1)
			if failures == 1 || failures%10 == 0 {
				s.c.log.Warn("delivery failed, will retry", "err", err,
					"failed_attempts", failures, "held", s.c.backlog.len(), "retry_in", d)
			}
			retry = s.c.clock.After(d)
		}
		kept := waiters[:0]
		for _, w := range waiters {
			switch {
			case !s.c.backlog.holdsThrough(w.seq):
				close(w.done)
			case w.ctx.Err() == nil:
				kept = append(kept, w)
			}
		}
		clear(waiters[len(kept):])
		waiters = kept
	}
}

// backoff returns the delay before the attempt after the n-th failure in a
// row, before jitter.
func (s *sender) backoff(n int) time.Duration {
	d, limit := s.c.opts.Period, s.c.opts.MaxBackoff
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// deliver sends everything held, in rounds of at most maxBatch points,
// until the backlog is empty or an error occurs.
func (s *sender) deliver() error {
	for {
		s.batch = s.c.backlog.peek(s.batch, maxBatch)
		if len(s.batch) == 0 {
			return nil
		}
		var err error
		if s.c.opts.Protocol == Graphite {
			err = s.sendGraphite(s.batch)
		} else {
			err = s.sendNative(s.batch)
		}
		clear(s.batch)
		if err != nil {
			return err
		}
	}
}

// connect dials a connection unless one is open, and reports whether it
// dialed.
func (s *sender) connect() (fresh bool, err error) {
	if s.conn != nil {
		return false, nil
	}
	d := net.Dialer{Timeout: s.c.opts.DialTimeout}
	conn, err := d.DialContext(s.ctx, "tcp", s.c.opts.Addr)
	if err != nil {
		return true, err
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		// Go sets TCP_NODELAY by default; say so, as a line must not wait
		// for the previous one's acknowledgement.
		_ = tc.SetNoDelay(true)
	}
	s.conn = conn
	s.br.Reset(conn)
	s.bw.Reset(conn)
	return true, nil
}

func (s *sender) closeConn() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// sendNative sends batch over the native protocol and forgets each point
// once the server answered it. On error the connection is dropped. A kept
// connection that fails before its first reply (the server may have closed
// it while idle) is replaced at once by a fresh one, once.
func (s *sender) sendNative(batch []point) error {
	for {
		fresh, err := s.connect()
		if err != nil {
			return err
		}
		n, err := s.pipeline(batch)
		if n > 0 {
			s.c.backlog.forget(batch[n-1].seq)
		}
		if errors.Is(err, ErrBusy) {
			s.window = max(1, s.window/2)
		}
		if err == nil {
			s.window = min(s.c.opts.MaxInFlight, s.window+s.window/4+1)
			return nil
		}
		s.closeConn()
		if fresh || n > 0 || errors.Is(err, ErrBusy) || s.ctx.Err() != nil {
			return err
		}
	}
}

// pipeline writes a LOG line per point on the open connection while
// reading the replies, with at most s.window lines unanswered. It
// returns how many points were answered, in order, and the first error.
func (s *sender) pipeline(batch []point) (int, error) {
	conn := s.conn
	stopAbort := context.AfterFunc(s.ctx, func() { conn.Close() })
	defer stopAbort()

	window := make(chan struct{}, s.window)
	stop := make(chan struct{})
	werr := make(chan writeResult, 1)
	go s.writeLines(conn, batch, window, stop, werr)

	n, err := s.readReplies(conn, batch, window)
	if err != nil {
		close(stop)
		conn.Close() // unblocks the writer
	}
	w := <-werr
	if w.err != nil && !errors.Is(err, ErrBusy) && !errors.Is(err, ErrProtocol) {
		// The writer's error explains the reader's (closed connection),
		// unless the reader got a reply that failed the attempt and
		// closed the connection under the writer.
		err = w.err
	}
	if err != nil && w.lines > n {
		s.mu.Lock()
		s.unanswered += uint64(w.lines - n)
		s.mu.Unlock()
	}
	if err != nil && s.ctx.Err() != nil {
		err = fmt.Errorf("client closing: %w", err)
	}
	return n, err
}

// writeResult is what writeLines did: the lines it handed to the
// connection's buffer (some may not have reached the server) and its
// error.
type writeResult struct {
	lines int
	err   error
}

func (s *sender) writeLines(conn net.Conn, batch []point, window chan struct{}, stop chan struct{}, werr chan<- writeResult) {
	bw := s.bw
	timeout := s.c.opts.WriteTimeout
	flush := func() error {
		if err := conn.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
			return err
		}
		return bw.Flush()
	}
	lines := 0
	fail := func(err error) {
		conn.Close()
		werr <- writeResult{lines, fmt.Errorf("write: %w", err)}
	}
	var line []byte
	for i := range batch {
		select {
		case window <- struct{}{}:
		default:
			// The window is full: send what is buffered, then wait
			// for replies to free a slot.
			if err := flush(); err != nil {
				fail(err)
				return
			}
			select {
			case window <- struct{}{}:
			case <-stop:
				werr <- writeResult{lines, nil}
				return
			}
		}
		line = appendLog(line[:0], &batch[i])
		if bw.Available() < len(line) {
			if err := flush(); err != nil {
				fail(err)
				return
			}
		}
		bw.Write(line)
		lines++
	}
	if err := flush(); err != nil {
		fail(err)
		return
	}
	werr <- writeResult{lines, nil}
}

var (
	reply201 = []byte("201")
	reply400 = []byte("400 ")
	reply404 = []byte("404 ")
	reply503 = []byte("503")
)

func (s *sender) readReplies(conn net.Conn, batch []point, window chan struct{}) (n int, err error) {
	var delivered, rejected uint64
	defer func() {
		s.mu.Lock()
		s.delivered += delivered
		s.rejected += rejected
		s.mu.Unlock()
	}()
	timeout := s.c.opts.ReadTimeout
	for i := range batch {
		// A reply already buffered needs no deadline: only a read that
		// may block does.
		if next, _ := s.br.Peek(s.br.Buffered()); bytes.IndexByte(next, '\n') < 0 {
			if err := conn.SetReadDeadline(time.Now().Add(timeout)); err != nil {
				return i, err
			}
		}
		line, err := s.br.ReadSlice('\n')
		if err != nil {
			return i, fmt.Errorf("read reply %d of %d: %w", i+1, len(batch), err)
		}
		switch {
		case bytes.HasPrefix(line, reply201):
			delivered++
		case bytes.HasPrefix(line, reply400), bytes.HasPrefix(line, reply404):
			// The server will never take this point: retrying would
			// block the backlog forever.
			if rejected == 0 {
				s.c.log.Warn("server refused a point; dropped",
					"name", batch[i].name, "value", batch[i].v, "reply", string(bytes.TrimSpace(line)))
			}
			rejected++
		case bytes.HasPrefix(line, reply503):
			return i, ErrBusy
		default:
			return i, fmt.Errorf("%w to LOG: %q", ErrProtocol, bytes.TrimSpace(line))
		}
		<-window
	}
	return len(batch), nil
}

// sendGraphite writes batch as Graphite plaintext on a fresh connection and
// forgets each point once its line was written without error: Graphite
// sends no acknowledgement, so delivery is at most once. The connection is
// then half-closed and the server given a moment to close its side: a
// server that takes a batch only at a clean end of its connection sees one.
func (s *sender) sendGraphite(batch []point) error {
	if _, err := s.connect(); err != nil {
		return err
	}
	conn, bw := s.conn, s.bw
	defer s.closeConn()
	stopAbort := context.AfterFunc(s.ctx, func() { conn.Close() })
	defer stopAbort()

	written := 0 // points whose lines left the buffer
	flush := func(upTo int) error {
		if err := conn.SetWriteDeadline(time.Now().Add(s.c.opts.WriteTimeout)); err != nil {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		written = upTo
		return nil
	}
	forget := func() {
		if written > 0 {
			s.c.backlog.forget(batch[written-1].seq)
			s.mu.Lock()
			s.delivered += uint64(written)
			s.mu.Unlock()
		}
	}
	var line []byte
	for i := range batch {
		line = appendGraphite(line[:0], &batch[i])
		if bw.Available() < len(line) {
			if err := flush(i); err != nil {
				forget()
				return fmt.Errorf("write: %w", err)
			}
		}
		bw.Write(line)
	}
	err := flush(len(batch))
	forget()
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if tc, ok := conn.(*net.TCPConn); ok && tc.CloseWrite() == nil {
		_ = conn.SetReadDeadline(time.Now().Add(min(s.c.opts.ReadTimeout, time.Second)))
		_, _ = io.Copy(io.Discard, conn)
	}
	return nil
}
