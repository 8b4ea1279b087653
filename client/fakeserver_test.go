package client

import (
	"bufio"
	"bytes"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeServer speaks the LOG part of the native protocol on 127.0.0.1: it
// answers "201 Metric Inserted" to every line and records the lines it
// acknowledged. A hook can make it refuse, delay or cut instead.
type fakeServer struct {
	t    testing.TB
	addr string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
	got   []string // the LOG lines acknowledged, without "\n"
	seen  int      // lines read
	dials int
	hook  func(n int, line string) action // n counts lines read, from 1
	count bool                            // count acknowledged lines instead of recording them
	acked int
	wg    sync.WaitGroup
}

// action is what the fake server does with a line.
type action struct {
	reply string        // reply line without "\n"; "" means 201 and record
	cut   bool          // send the replies so far, then close instead of replying
	lose  bool          // send the replies so far, record the line, then close: its ack is lost
	close bool          // reply, then close the connection
	delay time.Duration // wait before replying
}

func newFakeServer(t testing.TB) *fakeServer {
	t.Helper()
	f := &fakeServer{t: t, conns: make(map[net.Conn]bool)}
	f.start("127.0.0.1:0")
	t.Cleanup(f.stop)
	return f
}

// start listens on addr; after stop it restarts on the same port.
func (f *fakeServer) start(addr string) {
	f.t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; {
		ln, err = net.Listen("tcp", addr)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		f.t.Fatalf("listen: %v", err)
	}
	f.mu.Lock()
	f.ln = ln
	f.addr = ln.Addr().String()
	f.mu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns[conn] = true
			f.dials++
			f.mu.Unlock()
			f.wg.Add(1)
			go func() {
				defer f.wg.Done()
				f.serve(conn)
			}()
		}
	}()
}

// stop closes the listener and every connection.
func (f *fakeServer) stop() {
	f.mu.Lock()
	if f.ln != nil {
		f.ln.Close()
		f.ln = nil
	}
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *fakeServer) setHook(h func(n int, line string) action) {
	f.mu.Lock()
	f.hook = h
	f.mu.Unlock()
}

func (f *fakeServer) serve(conn net.Conn) {
	defer func() {
		conn.Close()
		f.mu.Lock()
		delete(f.conns, conn)
		f.mu.Unlock()
	}()
	br := bufio.NewReader(conn)
	bw := bufio.NewWriter(conn)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		f.mu.Lock()
		f.seen++
		n, hook := f.seen, f.hook
		f.mu.Unlock()
		var a action
		if hook != nil {
			a = hook(n, line)
		}
		if a.delay > 0 {
			bw.Flush()
			time.Sleep(a.delay)
		}
		if a.cut || a.lose {
			bw.Flush()
		}
		if a.cut {
			return
		}
		if a.reply != "" {
			bw.WriteString(a.reply + "\n")
		} else {
			if !strings.HasPrefix(line, "LOG ") {
				bw.WriteString("400 Bad Request -- Available commands: ['LOG', 'QUERY', 'NEW-ALERT']\n")
			} else {
				f.mu.Lock()
				if f.count {
					f.acked++
				} else {
					f.got = append(f.got, line)
				}
				f.mu.Unlock()
				bw.WriteString("201 Metric Inserted\n")
			}
		}
		if a.lose {
			return
		}
		if a.close {
			bw.Flush()
			return
		}
		if next, _ := br.Peek(br.Buffered()); !bytes.Contains(next, []byte{'\n'}) || bw.Available() < 64 {
			if bw.Flush() != nil {
				return
			}
		}
	}
}

// lines returns the LOG lines acknowledged so far.
func (f *fakeServer) lines() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.got...)
}

func (f *fakeServer) dialCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dials
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// manualClock is a clock that moves only when told; its timers never fire,
// so a Client using it collects only when the test calls collect.
type manualClock struct {
	mu sync.Mutex
	t  time.Time
}

func (m *manualClock) Now() time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.t
}

func (m *manualClock) set(t time.Time) {
	m.mu.Lock()
	m.t = t
	m.mu.Unlock()
}

func (m *manualClock) After(time.Duration) <-chan time.Time { return make(chan time.Time) }

// fastClock runs speed times faster than real time from base.
type fastClock struct {
	base, start time.Time
	speed       float64
}

func (f fastClock) Now() time.Time {
	return f.base.Add(time.Duration(float64(time.Since(f.start)) * f.speed))
}

func (f fastClock) After(d time.Duration) <-chan time.Time {
	return time.After(time.Duration(float64(d) / f.speed))
}
