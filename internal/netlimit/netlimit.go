// Package netlimit refuses the connections a server has no room for: it
// answers each with a fixed reply and closes it, without holding more than
// a bounded number of them (and their file descriptors) open meanwhile.
// The native listener and the HTTP listener both use it.
package netlimit

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// MaxRefusing bounds the connections being refused gracefully at once
// (each for up to 2 s, see Refuser.Refuse); past it a burst of connections
// is refused at once, so that it cannot hold the process's file
// descriptors.
const MaxRefusing = 64

// Refuser answers connections with Reply and closes them.
type Refuser struct {
	Reply []byte
	busy  atomic.Int64
}

// Refuse answers nc with the reply and closes it, in the background; it
// returns at once. While fewer than MaxRefusing connections are being
// refused, the client reads the reply even if it already sent requests
// (nc is half-closed and drained, not reset); beyond that nc gets the
// reply only if its socket takes it at once.
func (r *Refuser) Refuse(nc net.Conn) {
	if r.busy.Add(1) > MaxRefusing {
		r.busy.Add(-1)
		nc.SetWriteDeadline(time.Now().Add(time.Millisecond))
		nc.Write(r.Reply)
		nc.Close()
		return
	}
	go func() {
		defer r.busy.Add(-1)
		nc.SetWriteDeadline(time.Now().Add(time.Second))
		nc.Write(r.Reply)
		if tc, ok := nc.(*net.TCPConn); ok {
			// Close without a reset even if the client already sent
			// requests: it must read the reply, not ECONNRESET.
			tc.CloseWrite()
			tc.SetReadDeadline(time.Now().Add(time.Second))
			var buf [4096]byte
			for {
				if _, err := tc.Read(buf[:]); err != nil {
					break
				}
			}
		}
		nc.Close()
	}()
}

// Listener is a net.Listener whose Accept returns at most Max connections
// open at once; the connections beyond are refused with Reply and not
// returned. A returned connection counts until its first Close.
type Listener struct {
	net.Listener
	max     int64
	refuser Refuser
	open    atomic.Int64
	refused atomic.Int64
}

// NewListener limits ln to max open connections (at least 1), refusing
// the others with reply.
func NewListener(ln net.Listener, n int, reply []byte) *Listener {
	return &Listener{Listener: ln, max: int64(max(n, 1)), refuser: Refuser{Reply: reply}}
}

// Accept waits for a connection there is room for.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.refused.Add(1)
			l.refuser.Refuse(nc)
			continue
		}
		return &conn{Conn: nc, l: l}, nil
	}
}

// Open returns the connections accepted and not closed yet.
func (l *Listener) Open() int64 { return l.open.Load() }

// Refused returns the connections refused so far.
func (l *Listener) Refused() int64 { return l.refused.Load() }

type conn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

// CloseWrite half-closes a TCP connection, as net/http does before it
// closes a connection whose request it refused.
func (c *conn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}
