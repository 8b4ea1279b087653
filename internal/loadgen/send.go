package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// connSource is what one connection sends: pregenerated requests, or a
// generator of them.
type connSource struct {
	lines int64  // requests to send
	pre   []byte // every request, pregenerated; or nil
	// gen appends the next requests to dst, up to about chunk bytes, and
	// reports false once there are no more.
	gen func(dst []byte) ([]byte, bool)
}

// writeChunk is the size of the writes of pipelined requests.
const writeChunk = 256 << 10

// pregenSource returns a source sending points [0, points) of the series
// ss, generated now.
func pregenSource(ss []*Series, start int64, points int) connSource {
	lines := int64(len(ss)) * int64(points)
	buf := make([]byte, 0, lines*46)
	buf = AppendLOGs(buf, nil, ss, start, 0, points)
	return connSource{lines: lines, pre: buf}
}

// liveSource returns a source generating points [0, points) of the series
// ss as they are sent, as /bench/loadgen does.
func liveSource(ss []*Series, start int64, points int) connSource {
	j := 0
	return connSource{
		lines: int64(len(ss)) * int64(points),
		gen: func(dst []byte) ([]byte, bool) {
			for ; j < points && len(dst) < writeChunk; j++ {
				dst = AppendLOGs(dst, nil, ss, start, j, j+1)
			}
			return dst, j < points
		},
	}
}

// sendResult is what sendPipelined measured.
type sendResult struct {
	acked   int64
	bytes   int64
	elapsed time.Duration
}

// sendPipelined sends every source on its own connection to addr, writing
// without waiting for replies while reading them, and returns once every
// request was answered 201. Any other reply, or no reply for stall, fails
// it. It reports progress every second to progress, as label.
func sendPipelined(ctx context.Context, addr string, srcs []connSource, stall time.Duration, progress io.Writer, label string) (sendResult, error) {
	var res sendResult
	conns, err := dialAll(ctx, addr, len(srcs))
	if err != nil {
		return res, err
	}
	defer closeAll(conns)
	var (
		acked, sentBytes atomic.Int64
		wg               sync.WaitGroup
		errOnce          sync.Once
		firstErr         error
	)
	fail := func(err error) {
		errOnce.Do(func() {
			firstErr = err
			for _, nc := range conns {
				nc.SetDeadline(time.Now()) // unblock every reader and writer
			}
		})
	}
	stop := context.AfterFunc(ctx, func() { fail(ctx.Err()) })
	defer stop()
	start := time.Now()
	for i, src := range srcs {
		nc := conns[i]
		wg.Add(2)
		go func() {
			defer wg.Done()
			n, err := writeSource(nc, src)
			sentBytes.Add(n)
			if err != nil {
				fail(fmt.Errorf("connection %d: send: %w", i, err))
			}
		}()
		go func() {
			defer wg.Done()
			if err := readAcks(nc, src.lines, stall, &acked); err != nil {
				fail(fmt.Errorf("connection %d: %w", i, err))
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var total int64
	for _, s := range srcs {
		total += s.lines
	}
	for waiting := true; waiting; {
		select {
		case <-done:
			waiting = false
		case <-tick.C:
			el := time.Since(start)
			n := acked.Load()
			fmt.Fprintf(progress, "  %s: %5.1fs %d of %d acknowledged (%.0f samples/s so far)\n",
				label, el.Seconds(), n, total, float64(n)/el.Seconds())
		}
	}
	res.elapsed = time.Since(start)
	res.acked, res.bytes = acked.Load(), sentBytes.Load()
	return res, firstErr
}

// writeSource writes src's requests to nc and returns the bytes written.
func writeSource(nc net.Conn, src connSource) (int64, error) {
	var n int64
	if src.pre != nil {
		for off := 0; off < len(src.pre); off += writeChunk {
			k, err := nc.Write(src.pre[off:min(off+writeChunk, len(src.pre))])
			n += int64(k)
			if err != nil {
				return n, err
			}
		}
		return n, nil
	}
	buf := make([]byte, 0, writeChunk+4096)
	for more := true; more; {
		buf, more = src.gen(buf[:0])
		k, err := nc.Write(buf)
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

// readAcks reads want replies from nc, each of which must be 201, adding
// them to acked as they come.
func readAcks(nc net.Conn, want int64, stall time.Duration, acked *atomic.Int64) error {
	rr := newReplyReader(nc)
	var got int64
	var bad []byte
	var badAt int64
	for got < want {
		nc.SetReadDeadline(time.Now().Add(stall))
		n := got
		err := rr.read(func(line []byte) {
			if bad == nil && !hasPrefix(line, replyInserted) {
				bad, badAt = append([]byte{}, line...), got
			}
			got++
		})
		acked.Add(got - n)
		if bad != nil {
			return &ReplyError{Request: fmt.Sprintf("LOG request %d on the connection", badAt+1), Reply: string(bad)}
		}
		if got >= want {
			break
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return fmt.Errorf("the server closed the connection after %d of %d replies", got, want)
			}
			return fmt.Errorf("after %d of %d replies: %w", got, want, err)
		}
	}
	if got > want {
		return fmt.Errorf("%d replies to %d requests", got, want)
	}
	return nil
}

// dial connects to addr with TCP_NODELAY, as every vigia client does.
func dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	nc, err := d.DialContext(dctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the server at %s: %w", addr, unwrapOp(err))
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	return nc, nil
}

// dialAll opens n connections to addr, or none.
func dialAll(ctx context.Context, addr string, n int) ([]net.Conn, error) {
	conns := make([]net.Conn, 0, n)
	for range n {
		nc, err := dial(ctx, addr)
		if err != nil {
			closeAll(conns)
			return nil, err
		}
		conns = append(conns, nc)
	}
	return conns, nil
}

func closeAll(conns []net.Conn) {
	for _, nc := range conns {
		nc.Close()
	}
}
