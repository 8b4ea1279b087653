package client

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testTimeout is the Dial, Write and ReadTimeout of newTestClient. The
// servers of these tests answer at once or never, so a timeout only
// bounds a hang; a short one would fail a delivery on a busy machine
// (the reply late, the batch sent again and stored twice) and with it
// the tests that count deliveries, failures and copies exactly.
const testTimeout = 30 * time.Second

// newTestClient returns a real-clock Client sending to addr, closed at
// the end of the test.
func newTestClient(t *testing.T, addr string, o Options) *Client {
	t.Helper()
	o.Addr = addr
	if o.Logger == nil {
		o.Logger = quietLogger
	}
	if o.Period == 0 {
		o.Period = time.Hour // tests Flush explicitly
	}
	if o.DialTimeout == 0 {
		o.DialTimeout = testTimeout
	}
	if o.WriteTimeout == 0 {
		o.WriteTimeout = testTimeout
	}
	if o.ReadTimeout == 0 {
		o.ReadTimeout = testTimeout
	}
	c, err := New(&o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		c.Close(ctx)
	})
	return c
}

func flush(t *testing.T, c *Client, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

// parseLog splits "LOG name value ts".
func parseLog(t testing.TB, line string) (name string, v float64, ts float64) {
	t.Helper()
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "LOG" {
		t.Fatalf("bad line %q", line)
	}
	v, err1 := strconv.ParseFloat(f[2], 64)
	ts, err2 := strconv.ParseFloat(f[3], 64)
	if err1 != nil || err2 != nil {
		t.Fatalf("bad line %q", line)
	}
	return f[1], v, ts
}

func TestDeliverNative(t *testing.T) {
	srv := newFakeServer(t)
	c := newTestClient(t, srv.addr, Options{Period: time.Minute})
	c.Counter("a.b").Add(3)
	c.Gauge("g").Set(0.5)
	flush(t, c, testTimeout)
	start := time.Now().Truncate(time.Minute).Unix()
	want := []string{fmt.Sprintf("LOG a.b 3 %d", start), fmt.Sprintf("LOG g 0.5 %d", start)}
	if got := srv.lines(); !slices.Equal(got, want) {
		t.Fatalf("server got %q, want %q", got, want)
	}
	c.Counter("a.b").Inc()
	flush(t, c, testTimeout)
	if got, dials := len(srv.lines()), srv.dialCount(); got != 3 || dials != 1 {
		t.Errorf("%d lines on %d connections, want 3 on 1", got, dials)
	}
	if st := c.Stats(); st.Delivered != 3 || st.Held != 0 || st.Failures != 0 {
		t.Errorf("stats %+v", st)
	}
	flush(t, c, time.Second) // nothing held: returns at once
}

func TestCollectorClosesIntervalsOnTime(t *testing.T) {
	srv := newFakeServer(t)
	const period = 50 * time.Millisecond
	c := newTestClient(t, srv.addr, Options{Period: period})
	ctr := c.Counter("ticks")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			default:
				ctr.Inc()
				time.Sleep(time.Millisecond)
			}
		}
	}()
	waitFor(t, "5 points delivered", testTimeout, func() bool { return len(srv.lines()) >= 5 })
	var prev float64
	for _, l := range srv.lines() {
		_, v, ts := parseLog(t, l)
		ms := int64(ts*1000 + 0.5)
		if ms%period.Milliseconds() != 0 || v <= 0 || ts <= prev {
			t.Errorf("point %q: timestamp not a new multiple of the period, or empty", l)
		}
		prev = ts
	}
}

func TestRetryAfterCut(t *testing.T) {
	srv := newFakeServer(t)
	var cuts atomic.Int32
	srv.setHook(func(n int, line string) action {
		if n%7 == 0 && cuts.Add(1) <= 3 {
			return action{cut: true}
		}
		return action{}
	})
	c := newTestClient(t, srv.addr, Options{MaxInFlight: 4})
	for i := 0; i < 20; i++ {
		c.Counter("c" + strconv.Itoa(i)).Add(float64(i + 1))
	}
	flush(t, c, testTimeout)
	got := srv.lines()
	if len(got) != 20 {
		t.Fatalf("server stored %d lines, want each of the 20 once: %q", len(got), got)
	}
	seen := map[string]bool{}
	for _, l := range got {
		name, _, _ := parseLog(t, l)
		if seen[name] {
			t.Errorf("%s stored twice", name)
		}
		seen[name] = true
	}
	if st := c.Stats(); st.Failures != 3 || st.Delivered != 20 || srv.dialCount() != 4 {
		t.Errorf("stats %+v, %d connections; want 3 failures and 4 connections", st, srv.dialCount())
	}
}

func TestLostAckResends(t *testing.T) {
	// The server stores a point and the connection drops before its 201:
	// that point, and only that one, is stored twice.
	srv := newFakeServer(t)
	srv.setHook(func(n int, line string) action {
		if n == 3 {
			return action{lose: true}
		}
		return action{}
	})
	c := newTestClient(t, srv.addr, Options{})
	for i := 0; i < 5; i++ {
		c.Counter("c" + strconv.Itoa(i)).Inc()
	}
	flush(t, c, testTimeout)
	count := map[string]int{}
	for _, l := range srv.lines() {
		name, _, _ := parseLog(t, l)
		count[name]++
	}
	want := map[string]int{"c0": 1, "c1": 1, "c2": 2, "c3": 1, "c4": 1}
	if fmt.Sprint(count) != fmt.Sprint(want) {
		t.Errorf("stored %v, want %v", count, want)
	}
}

func TestRejectedAndBusy(t *testing.T) {
	srv := newFakeServer(t)
	var busy atomic.Bool
	srv.setHook(func(n int, line string) action {
		switch {
		case strings.HasPrefix(line, "LOG bad "):
			return action{reply: "400 Bad Request -- LOG <id:str> <value:float>"}
		case strings.HasPrefix(line, "LOG c2 ") && !busy.Swap(true):
			return action{reply: "503 The server is busy, try again later", close: true}
		}
		return action{}
	})
	c := newTestClient(t, srv.addr, Options{})
	c.Counter("c1").Inc()
	c.Counter("bad").Inc()
	c.Counter("c2").Inc()
	flush(t, c, testTimeout)
	if got := len(srv.lines()); got != 2 {
		t.Errorf("stored %d, want 2: %q", got, srv.lines())
	}
	st := c.Stats()
	if st.Rejected != 1 || st.Delivered != 2 || st.Failures != 1 || st.Held != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestStaleConnectionIsReplacedAtOnce(t *testing.T) {
	srv := newFakeServer(t)
	c := newTestClient(t, srv.addr, Options{})
	c.Counter("a").Inc()
	flush(t, c, testTimeout)
	srv.stop() // closes the idle connection, as a server's idle timeout does
	srv.start(srv.addr)
	c.Counter("a").Inc()
	flush(t, c, testTimeout)
	if st := c.Stats(); st.Failures != 0 || st.Delivered != 2 {
		t.Errorf("stats %+v: a stale connection should be redialed without a failed attempt", st)
	}
}

func TestPeriodicRetryAfterOutage(t *testing.T) {
	srv := newFakeServer(t)
	addr := srv.addr
	srv.stop()
	const period = 50 * time.Millisecond
	c := newTestClient(t, addr, Options{Period: period, MaxBackoff: 2 * period})
	ctr := c.Counter("n")
	for i := 0; i < 10; i++ {
		ctr.Inc()
		time.Sleep(period / 5)
	}
	waitFor(t, "failed attempts", testTimeout, func() bool { return c.Stats().Failures >= 2 })
	held := c.Stats().Held
	if held == 0 {
		t.Fatal("nothing held during the outage")
	}
	srv.start(addr)
	// No Flush: the periodic sender delivers the backlog, and the last
	// increments once their interval closes.
	total := func() float64 {
		var sum float64
		for _, l := range srv.lines() {
			_, v, _ := parseLog(t, l)
			sum += v
		}
		return sum
	}
	waitFor(t, "all 10 increments delivered without Flush", testTimeout, func() bool { return total() == 10 })
	time.Sleep(2 * period)
	if got := total(); got != 10 {
		t.Errorf("server got a total of %v, want 10", got)
	}
}

func TestBacklogBound(t *testing.T) {
	srv := newFakeServer(t)
	addr := srv.addr
	srv.stop() // down
	const maxPoints = 500
	c, clk := newManualClient(t, &Options{Addr: addr, MaxPoints: maxPoints, Period: 10 * time.Second})
	ctrs := make([]*Counter, 100)
	for i := range ctrs {
		ctrs[i] = c.Counter(fmt.Sprintf("c%03d", i))
	}
	produced := 0
	round := func(ms int64) {
		for _, ctr := range ctrs {
			ctr.Inc()
		}
		clk.set(at(ms))
		tickNow(c)
		produced += len(ctrs)
	}
	// Warm up, then measure the heap across many more intervals.
	var ms int64
	for i := 0; i < 20; i++ {
		ms += 10_000
		round(ms)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < 2000; i++ {
		ms += 10_000
		round(ms)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	if grown := int64(after.HeapAlloc) - int64(before.HeapAlloc); grown > 1<<20 {
		t.Errorf("heap grew by %d bytes over 200,000 points with MaxPoints %d", grown, maxPoints)
	}

	st := c.Stats()
	if st.Held != maxPoints {
		t.Fatalf("held %d, want %d", st.Held, maxPoints)
	}
	// Every point made is held or dropped; the drop reports are points too.
	held := c.Snapshot()
	var reports int
	var lastReport float64
	for _, p := range held {
		if p.Name == DroppedMetric {
			reports++
			lastReport = p.Value
		}
	}
	if reports == 0 {
		t.Fatal("no vigia.client.dropped point held")
	}
	// Every interval after the fifth (the backlog holds five) dropped
	// points and made a drop report, itself a point.
	made := int(c.backlog.lastSeq())
	if reports := made - produced; reports != 2020-5 {
		t.Errorf("%d drop reports made, want one per interval that dropped, %d", reports, 2020-5)
	}
	if int(st.Dropped) != made-maxPoints {
		t.Errorf("dropped %d, want %d made - %d held", st.Dropped, made, maxPoints)
	}
	if uint64(lastReport) != st.Dropped {
		t.Errorf("last vigia.client.dropped %v, Stats.Dropped %d", lastReport, st.Dropped)
	}
	// The oldest were dropped: what is held is the last intervals.
	if first := held[0].Time.UnixMilli() - t0; first < ms-10_000*6 {
		t.Errorf("oldest held point at %d ms, expected one of the last intervals before %d", first, ms)
	}

	// Back up: exactly what was held is delivered, the drop report last.
	srv.start(addr)
	flush(t, c, testTimeout)
	lines := srv.lines()
	if len(lines) != maxPoints {
		t.Fatalf("delivered %d, want %d", len(lines), maxPoints)
	}
	name, v, _ := parseLog(t, lines[len(lines)-1])
	if name != DroppedMetric || uint64(v) != st.Dropped {
		t.Errorf("delivered %q last, want the drop report of %d", lines[len(lines)-1], st.Dropped)
	}
}

func TestCloseDeliversAndStops(t *testing.T) {
	srv := newFakeServer(t)
	c := newTestClient(t, srv.addr, Options{})
	c.Counter("a").Add(2)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := srv.lines(); len(got) != 1 || !strings.HasPrefix(got[0], "LOG a 2 ") {
		t.Errorf("server got %q", got)
	}
	if err := c.Flush(ctx); !errors.Is(err, ErrClosed) {
		t.Errorf("Flush after Close: %v, want ErrClosed", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

func TestCloseWithServerDownReportsLoss(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newTestClient(t, addr, Options{})
	c.Counter("a").Inc()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	closed := make(chan error, 1)
	go func() { closed <- c.Close(ctx) }()
	// Close retries while its context lasts, and returns when it ends.
	waitFor(t, "Close to retry", testTimeout, func() bool { return c.Stats().Failures >= 2 })
	cancel()
	select {
	case err = <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Close still running 10s after its context ended")
	}
	if err == nil || !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "1 points not delivered") {
		t.Errorf("Close: %v", err)
	}
}

func TestConcurrentUpdatesAndFlushes(t *testing.T) {
	srv := newFakeServer(t)
	c := newTestClient(t, srv.addr, Options{Period: 20 * time.Millisecond})
	const workers, per = 4, 5000
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				c.Counter("n").Inc()
				c.Gauge("g").Set(float64(i))
				c.GaugeWithMode("m", GaugeMean).Set(float64(i))
				c.Meter("total").Add(1)
				c.Histogram("h").Observe(float64(i))
				c.Timer("t").Observe(time.Duration(i))
				if i%1000 == 0 {
					_ = c.Get("h")
					_ = c.Snapshot()
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < 20; i++ {
			ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
			if err := c.Flush(ctx); err != nil {
				t.Error(err)
			}
			cancel()
		}
	}()
	wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	var n, hcount float64
	for _, l := range srv.lines() {
		name, v, _ := parseLog(t, l)
		switch name {
		case "n":
			n += v
		case "h.count":
			hcount += v
		}
	}
	if n != workers*per || hcount != workers*per {
		t.Errorf("server got counter total %v and histogram count %v, want %d (stats %+v)", n, hcount, workers*per, c.Stats())
	}
}

func TestGraphite(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var mu sync.Mutex
	var got []string
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				buf := make([]byte, 4096)
				var data []byte
				for {
					n, err := conn.Read(buf)
					data = append(data, buf[:n]...)
					if err != nil {
						break
					}
				}
				mu.Lock()
				got = append(got, strings.Split(strings.TrimSpace(string(data)), "\n")...)
				mu.Unlock()
			}()
		}
	}()
	c := newTestClient(t, ln.Addr().String(), Options{Protocol: Graphite, Period: time.Minute})
	c.Counter("a.b").Add(4)
	c.Gauge("c").Set(-1.25)
	flush(t, c, testTimeout)
	start := time.Now().Truncate(time.Minute).Unix()
	want := []string{fmt.Sprintf("a.b 4 %d", start), fmt.Sprintf("c -1.25 %d", start)}
	waitFor(t, "graphite lines", testTimeout, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestBackoff(t *testing.T) {
	c, _ := newManualClient(t, &Options{Period: time.Hour, MaxBackoff: 5 * time.Hour})
	for n, want := range map[int]time.Duration{1: time.Hour, 2: 2 * time.Hour, 3: 4 * time.Hour, 4: 5 * time.Hour, 1000: 5 * time.Hour} {
		if got := c.sender.backoff(n); got != want {
			t.Errorf("backoff(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestBusyShrinksWindow(t *testing.T) {
	srv := newFakeServer(t)
	var busy atomic.Int32
	srv.setHook(func(n int, line string) action {
		if busy.Add(1) <= 3 {
			return action{reply: "503 The server is busy, try again later", close: true}
		}
		return action{}
	})
	c := newTestClient(t, srv.addr, Options{MaxInFlight: 64})
	c.Counter("a").Inc()
	flush(t, c, testTimeout)
	// Three 503s halve the window to 8; the success then grows it by a
	// quarter plus one.
	if w := c.sender.window; w != 11 {
		t.Errorf("window %d after three 503s and a success, want 11", w)
	}
	if st := c.Stats(); st.Failures != 3 || st.Delivered != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestGraphiteKeepsWhatWasNotWritten(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // down
	c := newTestClient(t, addr, Options{Protocol: Graphite})
	c.Counter("a").Inc()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Flush(ctx); err == nil {
		t.Fatal("Flush succeeded with the server down")
	}
	if held := len(c.Get("a")); held != 1 {
		t.Fatalf("held %d points after a refused connection, want 1", held)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		b, _ := io.ReadAll(conn)
		got <- string(b)
	}()
	flush(t, c, testTimeout)
	if line := <-got; !strings.HasPrefix(line, "a 1 ") {
		t.Errorf("server got %q", line)
	}
}

func TestFlushReturnsWhenClosed(t *testing.T) {
	// A Flush waiting without a deadline for a server that is down
	// returns once another goroutine's Close gives up and stops the
	// client, rather than waiting forever.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := newTestClient(t, addr, Options{})
	c.Counter("a").Inc()
	flushed := make(chan error, 1)
	go func() { flushed <- c.Flush(context.Background()) }()
	waitFor(t, "a failed attempt", testTimeout, func() bool { return c.Stats().Failures > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Close(ctx); err == nil {
		t.Fatal("Close succeeded with the server down")
	}
	select {
	case err := <-flushed:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("Flush: %v, want ErrClosed", err)
		}
	case <-time.After(testTimeout):
		t.Fatalf("Flush still waiting %v after Close stopped the client", testTimeout)
	}
}

func TestBusyIsReportedWhileWriting(t *testing.T) {
	// The server answers the first line with 503 and reads no more, as a
	// busy server may: the writer is still writing when the reader sees
	// the 503 and closes the connection. The failure is a 503 (the window
	// halves), not the writer's error on the connection closed under it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	release := make(chan struct{})
	defer close(release)
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				if _, err := bufio.NewReader(conn).ReadString('\n'); err != nil {
					return
				}
				io.WriteString(conn, "503 The server is busy, try again later\n")
				<-release
			}()
		}
	}()
	const points = 30_000 // about 7 MB of LOG lines: more than the sockets buffer
	c := newTestClient(t, ln.Addr().String(), Options{MaxInFlight: points})
	long := strings.Repeat("x", 200)
	for i := 0; i < points; i++ {
		c.Counter(long + strconv.Itoa(i)).Inc()
	}
	ctx, cancel := context.WithCancel(context.Background())
	flushed := make(chan error, 1)
	go func() { flushed <- c.Flush(ctx) }()
	waitFor(t, "a failed attempt", testTimeout, func() bool { return c.Stats().Failures > 0 })
	cancel()
	if err := <-flushed; !errors.Is(err, ErrBusy) {
		t.Errorf("Flush: %v, want the last delivery error to be ErrBusy", err)
	}
}
