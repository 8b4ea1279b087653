package native

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigia-mon/vigia/internal/native/wire"
	"github.com/vigia-mon/vigia/internal/netlimit"
	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// countingWriter stores into a real DB and counts Write calls.
type countingWriter struct {
	db     *tsdb.DB
	calls  atomic.Int64
	fail   atomic.Pointer[error]
	before func()
}

func (w *countingWriter) Write(s []tsdb.Sample) error {
	w.calls.Add(1)
	if w.before != nil {
		w.before()
	}
	if err := w.fail.Load(); err != nil {
		return *err
	}
	return w.db.Append(s)
}

// fakeAlerts is an Alerts whose Subscribe channel the test feeds.
type fakeAlerts struct {
	events chan [][]byte
}

func (a *fakeAlerts) AddRule(metric string, op query.Op, secs int64, limit float64, cmp string) (int64, error) {
	return 1, nil
}
func (a *fakeAlerts) ListJSON() ([]byte, error) { return []byte("[]"), nil }
func (a *fakeAlerts) DeleteRule(id int64) error { return nil }
func (a *fakeAlerts) Subscribe() (<-chan [][]byte, func()) {
	return a.events, func() {}
}

type testServer struct {
	srv  *Server
	addr string
	db   *tsdb.DB
	w    *countingWriter
	done chan error
}

func startServer(t testing.TB, opts Options) *testServer {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	w := &countingWriter{db: db}
	opts.Store = db
	if opts.Writer == nil {
		opts.Writer = w
	}
	srv := New(opts)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{srv: srv, addr: ln.Addr().String(), db: db, w: w, done: make(chan error, 1)}
	go func() { ts.done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		<-ts.done
		db.Close()
	})
	return ts
}

type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: t, conn: c, r: bufio.NewReader(c)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatal(err)
	}
}

// sendAsync writes s from another goroutine, for requests larger than the
// socket buffers; a write error shows as a missing reply.
func (c *client) sendAsync(s string) {
	go io.WriteString(c.conn, s)
}

func (c *client) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read reply: %v (got %q)", err, l)
	}
	return l
}

func (c *client) do(req string) string {
	c.t.Helper()
	c.send(req + "\n")
	return strings.TrimSuffix(c.line(), "\n")
}

// expectClosed checks that the server closed the connection.
func (c *client) expectClosed() {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := c.r.ReadString('\n'); err == nil || l != "" {
		c.t.Fatalf("connection still open: read %q, %v", l, err)
	}
}

func TestRequests(t *testing.T) {
	ts := startServer(t, Options{Alerts: &fakeAlerts{}})
	c := dial(t, ts.addr)
	steps := []struct{ req, want string }{
		{"QUERY x COUNT 1", "404 Metric Not Found"},
		{"LOG x 1 2022-04-26T00:00:00", "201 Metric Inserted"},
		{"LOG x 2 2022-04-26T00:00:00", "201 Metric Inserted"},
		{"LOG x 0.5 2022-04-26T00:00:59.999Z", "201 Metric Inserted"},
		{"LOG x 4 2022-04-26T00:01:00", "201 Metric Inserted"},
		{"QUERY x COUNT 60", "200 [3, 1]"},
		{"QUERY x AVG 60", "200 [1.1666666666666667, 4.0]"},
		{"QUERY x MAX 60 2022-04-25T23:59:59", "200 [2.0, 4.0]"},
		{"QUERY x MAX 60 2022-04-26T00:00:30", "200 [4.0]"},
		{"QUERY x SUM 60 2022-04-26T00:00:00 2022-04-26T00:01:00", "200 [3.5]"},
		{"QUERY x LAST 3600 2022-04-25", "200 [4.0]"},
		{"QUERY x MIN 1 2023-01-01", "200 []"},
		{"QUERY x MIN 1 2022-04-27 2022-04-26", "200 []"},
		{"LOG x nan", "400 Bad Request -- LOG <id:str> <value:float>"},
		{"PING", "200 PONG"},
		{"METRICS", `200 ["x"]`},
		{"METRICS y", `200 []`},
		{"NEW-ALERT x MAX 1 1", "200 Alert Registered"},
		{"ALERTS", "200 []"},
		{"DELETE-ALERT 1", "200 Alert Deleted"},
	}
	for _, s := range steps {
		if got := c.do(s.req); got != s.want {
			t.Errorf("%s: got %q, want %q", s.req, got, s.want)
		}
	}
}

// TestMetricsNames: METRICS prints the names as they are logged, as a
// JSON array of strings: no HTML escapes (a<b, not a\u003cb) that a
// script would then send back in a QUERY.
func TestMetricsNames(t *testing.T) {
	ts := startServer(t, Options{})
	c := dial(t, ts.addr)
	for _, id := range []string{"a<b&c>", `q"uote\`, "café"} {
		if got := c.do("LOG " + id + " 1"); got != "201 Metric Inserted" {
			t.Fatalf("LOG %s: %q", id, got)
		}
	}
	if got, want := c.do("METRICS"), `200 ["a<b&c>","café","q\"uote\\"]`; got != want {
		t.Errorf("METRICS: %s, want %s", got, want)
	}
	if got, want := c.do("METRICS a<"), `200 ["a<b&c>"]`; got != want {
		t.Errorf("METRICS a<: %s, want %s", got, want)
	}
}

func TestMaxSeries(t *testing.T) {
	ts := startServer(t, Options{MaxSeries: 2})
	c := dial(t, ts.addr)
	steps := []struct{ req, want string }{
		{"LOG a 1", "201 Metric Inserted"},
		{"LOG b 1", "201 Metric Inserted"},
		{"LOG c 1", "400 Bad Request -- too many series: this server keeps at most 2 (--max-series)"},
		{"LOG a 2", "201 Metric Inserted"},
		{"QUERY c COUNT 1", "404 Metric Not Found"},
		{"QUERY a COUNT 1000000", "200 [2]"},
	}
	for _, s := range steps {
		if got := c.do(s.req); got != s.want {
			t.Errorf("%s: got %q, want %q", s.req, got, s.want)
		}
	}
	if n := ts.srv.Stats().SeriesLimit; n != 1 {
		t.Errorf("series limit count %d, want 1", n)
	}
}

// TestMaxSeriesConcurrent: connections pipelining new series at once
// share --max-series: the series each has pending count for all.
func TestMaxSeriesConcurrent(t *testing.T) {
	ts := startServer(t, Options{MaxSeries: 1000})
	var wg sync.WaitGroup
	var created atomic.Int64
	for i := range 8 {
		c := dial(t, ts.addr)
		var req strings.Builder
		for j := range 1000 {
			fmt.Fprintf(&req, "LOG c%d.s%d 1\n", i, j)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.sendAsync(req.String())
			for range 1000 {
				l, err := c.r.ReadString('\n')
				if err != nil {
					return
				}
				if strings.HasPrefix(l, "201 ") {
					created.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := ts.db.NumSeries(); n > 1000 || created.Load() != int64(n) {
		t.Fatalf("%d series created, %d LOGs acknowledged; want at most 1000, one each", n, created.Load())
	}
	if r := ts.srv.newSeries.Load(); r != 0 {
		t.Fatalf("%d series still reserved", r)
	}
}

// TestMaxSeriesPipelined sends new series in one batch: they count
// against --max-series before the batch creates them.
func TestMaxSeriesPipelined(t *testing.T) {
	ts := startServer(t, Options{MaxSeries: 3})
	c := dial(t, ts.addr)
	c.send("LOG a 1\nLOG b 1\nLOG a 2\nLOG c 1\nLOG d 1\nLOG b 2\nLOG e 1\nLOG c 2\n")
	want := []string{"201", "201", "201", "201", "400", "201", "400", "201"}
	for i, w := range want {
		if got := c.line(); !strings.HasPrefix(got, w+" ") {
			t.Errorf("reply %d: %q, want %s", i, got, w)
		}
	}
	for _, q := range []struct{ req, want string }{
		{"QUERY a COUNT 1000000", "200 [2]"},
		{"QUERY b COUNT 1000000", "200 [2]"},
		{"QUERY c COUNT 1000000", "200 [2]"},
		{"QUERY d COUNT 1", "404 Metric Not Found"},
		{"METRICS", `200 ["a","b","c"]`},
	} {
		if got := c.do(q.req); got != q.want {
			t.Errorf("%s: got %q, want %q", q.req, got, q.want)
		}
	}
}

func TestMaxQueryPoints(t *testing.T) {
	ts := startServer(t, Options{MaxQueryPoints: 3})
	c := dial(t, ts.addr)
	c.send("LOG a 1 1650931200\nLOG a 1 1650931201\nLOG a 1 1650931202\nLOG a 1 1650931203\n")
	for range 4 {
		c.line()
	}
	if got := c.do("QUERY a COUNT 2"); got != "200 [2, 2]" {
		t.Fatal(got)
	}
	if got := c.do("QUERY a COUNT 1"); got != "400 Bad Request -- QUERY would answer more than 3 windows: use a larger secs or a narrower from/to" {
		t.Fatal(got)
	}
	if got := c.do("QUERY a COUNT 1 1650931201"); got != "200 [1, 1, 1]" {
		t.Fatal(got)
	}
}

func TestAlertsDisabled(t *testing.T) {
	ts := startServer(t, Options{})
	c := dial(t, ts.addr)
	for _, req := range []string{"ALERTS", "SUBSCRIBE", "DELETE-ALERT 1", "NEW-ALERT x MAX 1 1"} {
		if got := c.do(req); got != strings.TrimSuffix(string(replyAlertsDisabled), "\n") {
			t.Errorf("%s: %q", req, got)
		}
	}
	if got := c.do("PING"); got != "200 PONG" {
		t.Fatal(got)
	}
}

// TestPipelinedLOGsShareWrites sends thousands of LOGs at once and checks
// that they were committed in far fewer Write calls, replied in order.
func TestPipelinedLOGsShareWrites(t *testing.T) {
	ts := startServer(t, Options{})
	c := dial(t, ts.addr)
	const n = 10000
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "LOG p %d %d\n", i, 1650931200+i)
		if i == n/2 {
			b.WriteString("QUERY p COUNT 100000\n")
		}
	}
	c.sendAsync(b.String())
	for i := range n + 1 {
		got := c.line()
		want := "201 Metric Inserted\n"
		if i == n/2+1 {
			want = fmt.Sprintf("200 [%d]\n", n/2+1)
		}
		if got != want {
			t.Fatalf("reply %d: %q, want %q", i, got, want)
		}
	}
	if calls := ts.w.calls.Load(); calls > n/10 {
		t.Errorf("%d LOGs took %d writes", n, calls)
	}
	if got := c.do("QUERY p COUNT 100000"); got != fmt.Sprintf("200 [%d]", n) {
		t.Fatal(got)
	}
}

// gateWriter stores into a real DB, records the size of each Write, and
// holds the first Write until gate is closed.
type gateWriter struct {
	db    *tsdb.DB
	gate  chan struct{}
	mu    sync.Mutex
	sizes []int
}

func (w *gateWriter) Write(s []tsdb.Sample) error {
	w.mu.Lock()
	first := len(w.sizes) == 0
	w.sizes = append(w.sizes, len(s))
	w.mu.Unlock()
	if first {
		<-w.gate
	}
	return w.db.Append(s)
}

// waitInflight waits until the server counts n requests in flight.
func waitInflight(t *testing.T, srv *Server, n int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); srv.inflight.Load() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in flight, want %d", srv.inflight.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// The LOG batches a connection reads while its previous batch is being
// committed go to the store together, in one Write, and are answered in
// order.
func TestQueuedBatchesShareACommit(t *testing.T) {
	w := &gateWriter{gate: make(chan struct{})}
	ts := startServer(t, Options{Writer: w})
	w.db = ts.db
	c := dial(t, ts.addr)
	c.send("LOG j 1 1650931201\n")
	// The writer holds it, in Write: not only in flight, which the reader
	// counts before the writer takes it (and could join it with the next).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		w.mu.Lock()
		entered := len(w.sizes) > 0
		w.mu.Unlock()
		if entered {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first LOG never reached Write")
		}
	}
	c.send("LOG j 2 1650931202\nLOG j 3 1650931203\n")
	waitInflight(t, ts.srv, 3) // queued
	c.send("LOG j 4 1650931204\n")
	waitInflight(t, ts.srv, 4) // queued behind
	close(w.gate)
	for i := range 4 {
		if got := c.line(); got != "201 Metric Inserted\n" {
			t.Fatalf("reply %d: %q", i, got)
		}
	}
	w.mu.Lock()
	sizes := fmt.Sprint(w.sizes)
	w.mu.Unlock()
	if sizes != "[1 3]" {
		t.Errorf("writes of %s samples, want [1 3]", sizes)
	}
	if got := c.do("QUERY j LAST 1 1650931201 1650931205"); got != "200 [1.0, 2.0, 3.0, 4.0]" {
		t.Errorf("stored: %s", got)
	}
	waitInflight(t, ts.srv, 0)
}

func TestOverloadedStore(t *testing.T) {
	ts := startServer(t, Options{})
	ts.w.fail.Store(&tsdb.ErrOverloaded)
	c := dial(t, ts.addr)
	c.send("LOG a 1\nLOG a 2\n")
	for range 2 {
		if got := c.line(); got != "503 The server is busy, try again later\n" {
			t.Fatalf("got %q", got)
		}
	}
	c.expectClosed()
	ts.w.fail.Store(nil)
	c = dial(t, ts.addr)
	if got := c.do("LOG a 3"); got != "201 Metric Inserted" {
		t.Fatal(got)
	}
	if got := c.do("QUERY a COUNT 100"); got != "200 [1]" {
		t.Fatalf("the refused LOGs were stored: %s", got)
	}
}

func TestStoreError(t *testing.T) {
	ts := startServer(t, Options{})
	boom := errors.New("disk on fire")
	ts.w.fail.Store(&boom)
	c := dial(t, ts.addr)
	if got := c.do("LOG a 1"); got != "500 Internal Server Error" {
		t.Fatal(got)
	}
	c.expectClosed()
}

func TestMaxConns(t *testing.T) {
	ts := startServer(t, Options{MaxConns: 2})
	a, b := dial(t, ts.addr), dial(t, ts.addr)
	a.do("PING")
	b.do("PING")
	c := dial(t, ts.addr)
	c.send("PING\n")
	if got := c.line(); got != "503 The server is busy, try again later\n" {
		t.Fatal(got)
	}
	c.expectClosed()
	a.conn.Close()
	deadline := time.Now().Add(10 * time.Second)
	for ts.srv.Stats().Conns > 1 {
		if time.Now().After(deadline) {
			t.Fatal("closed connection still counted")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := dial(t, ts.addr).do("PING"); got != "200 PONG" {
		t.Fatal(got)
	}
}

// TestRefusalBurst opens many connections beyond --max-conns at once and
// keeps them open: the server refuses them all, holding at most
// netlimit.MaxRefusing of them (and their goroutines) for a graceful close.
func TestRefusalBurst(t *testing.T) {
	ts := startServer(t, Options{MaxConns: 1})
	held := dial(t, ts.addr)
	held.do("PING")
	base := runtime.NumGoroutine()
	const n = 300
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range n {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	for deadline := time.Now().Add(10 * time.Second); ts.srv.Stats().RejectedConn < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d connections refused", ts.srv.Stats().RejectedConn, n)
		}
		time.Sleep(time.Millisecond)
	}
	if extra := runtime.NumGoroutine() - base; extra > netlimit.MaxRefusing+8 {
		t.Errorf("%d more goroutines during the burst, want at most %d", extra, netlimit.MaxRefusing+8)
	}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		if len(b) > 0 && string(b) != "503 The server is busy, try again later\n" {
			t.Fatalf("connection %d read %q", i, b)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection %d was not closed", i)
		}
	}
	if got := held.do("PING"); got != "200 PONG" {
		t.Fatal(got)
	}
}

// TestMaxInflight holds one request in the store while another connection
// sends one: it is refused and closed, and the first completes.
func TestMaxInflight(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	ts := startServer(t, Options{MaxInflight: 1})
	var once sync.Once
	ts.w.before = func() {
		once.Do(func() {
			entered <- struct{}{}
			<-release
		})
	}
	a := dial(t, ts.addr)
	a.send("LOG a 1\n")
	<-entered
	b := dial(t, ts.addr)
	if got := b.do("LOG b 1"); got != "503 The server is busy, try again later" {
		t.Fatal(got)
	}
	b.expectClosed()
	close(release)
	if got := a.line(); got != "201 Metric Inserted\n" {
		t.Fatal(got)
	}
	// The refused LOG left nothing behind: not even its series.
	if got := a.do("QUERY b COUNT 1"); got != "404 Metric Not Found" {
		t.Fatalf("refused LOG stored: %s", got)
	}
	if got := a.do("METRICS b"); got != "200 []" {
		t.Fatalf("refused LOG created its series: %s", got)
	}
}

// TestMaxInflightOwnPipeline: a client pipelining more LOGs than
// --max-inflight, alone on the server, is not refused: its batches wait
// for its own earlier ones to be committed (and give their slots back)
// rather than get 503.
func TestMaxInflightOwnPipeline(t *testing.T) {
	ts := startServer(t, Options{MaxInflight: 10})
	c := dial(t, ts.addr)
	const n = 2000
	var req strings.Builder
	for i := range n {
		fmt.Fprintf(&req, "LOG own %d %d\n", i, 1650931200+i)
	}
	c.sendAsync(req.String())
	for i := range n {
		if got := c.line(); got != "201 Metric Inserted\n" {
			t.Fatalf("reply %d: %q", i, got)
		}
	}
	if got := c.do("QUERY own COUNT 100000"); got != fmt.Sprintf("200 [%d]", n) {
		t.Fatal(got)
	}
	if busy := ts.srv.Stats().Busy; busy != 0 {
		t.Errorf("%d requests refused as busy", busy)
	}
}

func TestLongLine(t *testing.T) {
	ts := startServer(t, Options{})
	// Blanks before the command, more than the 64 bytes the command is
	// looked for in: still the QUERY usage line.
	c := dial(t, ts.addr)
	c.sendAsync(strings.Repeat(" ", 70) + "QUERY " + strings.Repeat("x", MaxLine) + " MAX 60\n")
	if got := c.line(); got != "400 Bad Request -- QUERY <id:str> <op:AVG|MAX|MIN|COUNT> <secs:int> [from:iso_date] [to:iso_date]\n" {
		t.Fatalf("long QUERY after blanks: %q", got)
	}
	c.expectClosed()
	for _, n := range []int{1000, MaxLine - len("LOG  1"), MaxLine - len("LOG  1") + 1, 3 * MaxLine} {
		c := dial(t, ts.addr)
		c.sendAsync("LOG " + strings.Repeat("x", n) + " 1\nPING\n")
		got := c.line()
		if got != "400 Bad Request -- LOG <id:str> <value:float>\n" {
			t.Fatalf("line of %d bytes: %q", n, got)
		}
		if n > MaxLine-len("LOG  1") {
			c.expectClosed()
		} else if got := c.line(); got != "200 PONG\n" {
			t.Fatalf("after a long id: %q", got)
		}
	}
	// The limit does not count the line ending, "\r\n" included.
	c = dial(t, ts.addr)
	c.sendAsync("LOG " + strings.Repeat("x", MaxLine-len("LOG  1")) + " 1\r\nPING\r\n")
	if got := c.line(); got != "400 Bad Request -- LOG <id:str> <value:float>\n" {
		t.Fatalf("line of %d bytes and CR LF: %q", MaxLine, got)
	}
	if got := c.line(); got != "200 PONG\n" {
		t.Fatalf("after a line of %d bytes and CR LF: %q", MaxLine, got)
	}
	if got := dial(t, ts.addr).do("PING"); got != "200 PONG" {
		t.Fatal(got)
	}
	// Every line answered counts as a request: a line too long too, so
	// that the bad requests are never more than the requests.
	if st := ts.srv.Stats(); st.Requests != 10 || st.BadRequests != 6 {
		t.Errorf("%d requests, %d bad; want 10 and 6", st.Requests, st.BadRequests)
	}
}

// TestIdleTimeout: a connection idle for IdleTimeout after its last reply
// is closed, and the timeout counted.
func TestIdleTimeout(t *testing.T) {
	ts := startServer(t, Options{IdleTimeout: 50 * time.Millisecond})
	// A busy machine may let the timeout pass between the dial and the
	// PING: the server then closes the connection unanswered, as it
	// should, and the test tries again on a new one.
	for deadline := time.Now().Add(10 * time.Second); ; {
		c := dial(t, ts.addr)
		if _, err := io.WriteString(c.conn, "PING\n"); err == nil {
			if l, err := c.r.ReadString('\n'); err == nil {
				if l != "200 PONG\n" {
					t.Fatalf("PING: %q", l)
				}
				c.expectClosed()
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no PING answered on a fresh connection within 10 s")
		}
	}
	if ts.srv.Stats().Timeouts == 0 {
		t.Error("timeout not counted")
	}
}

// TestLastLineWithoutNewline: a request the client's close cuts before its
// newline may be a line cut short: it is answered with a 400 and not
// executed.
func TestLastLineWithoutNewline(t *testing.T) {
	ts := startServer(t, Options{})
	c := dial(t, ts.addr)
	c.send("LOG a 1\r\nLOG a 2")
	c.conn.(*net.TCPConn).CloseWrite()
	if got := c.line(); got != "201 Metric Inserted\n" {
		t.Fatal(got)
	}
	if got := c.line(); got != string(wire.ReplyUnterminated) {
		t.Fatal(got)
	}
	c.expectClosed()
	if got := dial(t, ts.addr).do("QUERY a COUNT 100000"); got != "200 [1]" {
		t.Errorf("after a cut LOG: %s, want only the first sample", got)
	}
	if st := ts.srv.Stats(); st.Requests != 3 || st.BadRequests != 1 {
		t.Errorf("%d requests, %d bad; want 3 (the cut LOG one of them) and 1", st.Requests, st.BadRequests)
	}
}

// TestLastBytesWithoutNewline: what follows the last newline is a request
// unless it is only the blanks that separate tokens (spaces, tabs) and a
// CR: a form feed or a no-break space there is an unknown command cut
// by the close, as it is with its newline.
func TestLastBytesWithoutNewline(t *testing.T) {
	ts := startServer(t, Options{})
	for _, tc := range []struct {
		tail string
		cut  bool
	}{
		{" \t \r", false},
		{"", false},
		{"\f", true},
		{"\u00a0", true},
		{" PING", true},
	} {
		c := dial(t, ts.addr)
		c.send("PING\n" + tc.tail)
		c.conn.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c.r)
		if err != nil {
			t.Fatalf("%q: %v", tc.tail, err)
		}
		want := "200 PONG\n"
		if tc.cut {
			want += string(wire.ReplyUnterminated)
		}
		if string(b) != want {
			t.Errorf("PING and %q before the close: %q, want %q", tc.tail, b, want)
		}
	}
}

func TestEmptyLine(t *testing.T) {
	ts := startServer(t, Options{})
	c := dial(t, ts.addr)
	if got := c.do(""); !strings.HasPrefix(got, "400 Bad Request -- Available commands:") {
		t.Fatal(got)
	}
}

// TestSubscribe checks that pushed ALERT lines never split a reply and
// that the connection still answers requests.
func TestSubscribe(t *testing.T) {
	al := &fakeAlerts{events: make(chan [][]byte, 100)}
	ts := startServer(t, Options{Alerts: al})
	c := dial(t, ts.addr)
	if got := c.do("SUBSCRIBE"); got != "200 Subscribed" {
		t.Fatal(got)
	}
	go func() {
		for i := range 50 {
			al.events <- [][]byte{fmt.Appendf(nil, `{"id":%d}`, i)}
		}
	}()
	c.sendAsync(strings.Repeat("PING\n", 50))
	pongs, alerts := 0, 0
	for pongs < 50 || alerts < 50 {
		switch l := c.line(); {
		case l == "200 PONG\n":
			pongs++
		case strings.HasPrefix(l, `ALERT {"id":`) && strings.HasSuffix(l, "}\n"):
			alerts++
		default:
			t.Fatalf("unexpected line %q", l)
		}
	}
}

// TestShutdownAnswersReadRequests checks that Shutdown answers what a
// connection already sent before closing it.
func TestShutdownAnswersReadRequests(t *testing.T) {
	ts := startServer(t, Options{})
	c := dial(t, ts.addr)
	c.do("PING")
	entered := make(chan struct{})
	var once sync.Once
	ts.w.before = func() {
		once.Do(func() {
			close(entered)
			time.Sleep(50 * time.Millisecond)
		})
	}
	c.send("LOG a 1\n")
	<-entered
	if err := ts.srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := c.line(); got != "201 Metric Inserted\n" {
		t.Fatal(got)
	}
	c.expectClosed()
	err := <-ts.done
	ts.done <- err // for the cleanup, which waits for Serve to return
	if !errors.Is(err, ErrServerClosed) {
		t.Fatal(err)
	}
}

// BenchmarkPipelinedLOG measures the server's cost per pipelined LOG
// through a real store (group commit with fsync), one connection.
func BenchmarkPipelinedLOG(b *testing.B) {
	db, err := tsdb.Open(b.TempDir(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	srv := New(Options{Store: db, Writer: &countingWriter{db: db}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go srv.Serve(ln)
	defer srv.Shutdown(context.Background())
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	const batch = 1000
	var req []byte
	for i := range batch {
		req = fmt.Appendf(req, "LOG bench.gauge.s%06d %d.%02d 1650931200\n", i%100, i, i%100)
	}
	b.SetBytes(int64(len(req)) / batch)
	r := bufio.NewReaderSize(conn, 64<<10)
	done := make(chan error, 1)
	b.ResetTimer()
	go func() {
		for i := 0; i < b.N; i += batch {
			if _, err := conn.Write(req); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for i := 0; i < (b.N+batch-1)/batch*batch; i++ {
		if _, err := r.ReadSlice('\n'); err != nil {
			b.Fatal(err)
		}
	}
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}

// TestShutdownDeliversReplies shuts the server down while a client
// pipelines LOGs: every LOG the store holds afterwards had its reply
// delivered (the connection is half-closed and drained, not reset with
// replies in flight), and none was answered without being stored.
func TestShutdownDeliversReplies(t *testing.T) {
	ts := startServer(t, Options{})
	c := dial(t, ts.addr)
	c.do("PING")
	var req strings.Builder
	for i := range 300000 {
		fmt.Fprintf(&req, "LOG s %d\n", i)
	}
	c.sendAsync(req.String())
	if got := c.line(); got != "201 Metric Inserted\n" {
		t.Fatal(got)
	}
	replies := 1
	go ts.srv.Shutdown(context.Background())
	time.Sleep(100 * time.Millisecond) // replies pile up in the socket buffers
	for {
		l, err := c.r.ReadString('\n')
		if err != nil {
			break
		}
		if l != "201 Metric Inserted\n" {
			t.Fatalf("reply %q", l)
		}
		replies++
	}
	err := <-ts.done
	ts.done <- err
	ref, ok := ts.db.Lookup([]byte("s"), nil)
	stored := 0
	if ok {
		ts.db.Scan(ref, 0, math.MaxInt64, func(ts []int64, vs []float64) bool { stored += len(ts); return true })
	}
	if replies != stored {
		t.Fatalf("%d replies received, %d samples stored", replies, stored)
	}
}

// TestRefusedBatchEndsReplies: when a batch of LOGs is refused with 503s,
// the requests pipelined after it get no reply, not even a bad one's 400:
// a client resends everything after the last reply it read.
func TestRefusedBatchEndsReplies(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	ts := startServer(t, Options{MaxInflight: 2})
	var once sync.Once
	ts.w.before = func() {
		once.Do(func() {
			entered <- struct{}{}
			<-release
		})
	}
	defer close(release)
	a := dial(t, ts.addr)
	a.send("LOG a 1\nLOG a 2\n")
	<-entered
	waitInflight(t, ts.srv, 2) // both of a's LOGs hold a slot
	b := dial(t, ts.addr)
	b.send("LOG b 1\nFOO\nLOG b 2\n")
	if got := b.line(); got != "503 The server is busy, try again later\n" {
		t.Fatalf("refused LOG: %q", got)
	}
	b.expectClosed()
	if n := ts.srv.Stats().BadRequests; n != 0 {
		t.Errorf("%d bad requests counted, want 0: the FOO after the refused batch was not executed", n)
	}
}

// waitConns waits until the server counts n open connections.
func waitConns(t *testing.T, srv *Server, n int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); srv.Stats().Conns != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections open, want %d", srv.Stats().Conns, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestBigQueryNotKept: a connection that answered a QUERY of many windows
// does not keep the windows' memory, nor the reply's, while it idles;
// every open connection may have asked for one. The replies are of 1.5 MB
// and of just under 1 MiB (200,000 windows of "1.5, ").
func TestBigQueryNotKept(t *testing.T) {
	for _, n := range []int{300000, 200000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) { testBigQueryNotKept(t, n) })
	}
}

func testBigQueryNotKept(t *testing.T, n int) {
	ts := startServer(t, Options{})
	const conns = 4
	ref, err := ts.db.GetOrCreate([]byte("big"), nil)
	if err != nil {
		t.Fatal(err)
	}
	samples := make([]tsdb.Sample, n)
	for i := range samples {
		samples[i] = tsdb.Sample{Ref: ref, T: 1650931200000 + int64(i)*1000, V: 1.5}
	}
	if err := ts.db.Append(samples); err != nil {
		t.Fatal(err)
	}
	heap := func() uint64 {
		var ms runtime.MemStats
		runtime.GC()
		runtime.GC() // what sync.Pools held until the first
		runtime.ReadMemStats(&ms)
		return ms.HeapAlloc
	}
	// A first QUERY on a connection closed at once leaves in the heap
	// only what the store keeps.
	warm := dial(t, ts.addr)
	warm.do("QUERY big SUM 1")
	warm.conn.Close()
	waitConns(t, ts.srv, 0)
	before := heap()
	for range conns {
		c := dial(t, ts.addr)
		for range 3 { // the connection's reply buffers take turns
			got := c.do("QUERY big SUM 1")
			if want := len("200 []") + n*len("1.5, ") - len(", "); len(got) != want {
				t.Fatalf("QUERY reply of %d bytes, want %d", len(got), want)
			}
			c.do("PING")
		}
		// The connection stays open, idle.
	}
	reply := n * len("1.5, ") // bytes of one reply
	if grown := int64(heap()) - int64(before); grown > int64(conns*reply/4) {
		t.Errorf("heap grew %d KiB after %d connections each answered QUERYs of %d windows (%d KiB), and stays so while they idle",
			grown>>10, conns, n, reply>>10)
	}
}

// TestStoreFailuresLoggedOnce: a store that fails every write (a full
// disk) gets one log line for a burst of failed batches, not one each.
func TestStoreFailuresLoggedOnce(t *testing.T) {
	var logs syncBuf
	ts := startServer(t, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	failure := errors.New("write wal: no space left on device")
	ts.w.fail.Store(&failure)
	const batches = 20
	start := time.Now()
	for range batches {
		c := dial(t, ts.addr)
		if got := c.do("LOG full 1"); got != "500 Internal Server Error" {
			t.Fatalf("LOG on a failing store: %q", got)
		}
		c.expectClosed()
	}
	// One line at once, then at most one a second (a slow machine takes
	// more than a second for the burst).
	if n, most := strings.Count(logs.String(), "storing samples failed"), 1+int(time.Since(start)/time.Second); n < 1 || n > most {
		t.Errorf("%d log lines for %d failed batches in a burst, want one, and at most %d in %v:\n%s",
			n, batches, most, time.Since(start), logs.String())
	}
	// The batches after the first line are logged at the end of its
	// second, though no batch fails after them.
	failedRE := regexp.MustCompile(`storing samples failed.* batches=(\d+) samples=(\d+)`)
	logged := func() (n int) {
		for _, m := range failedRE.FindAllStringSubmatch(logs.String(), -1) {
			b, _ := strconv.Atoi(m[1])
			n += b
		}
		return n
	}
	for deadline := time.Now().Add(10 * time.Second); logged() != batches; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the log lines count %d failed batches of %d, 10 s after the burst:\n%s", logged(), batches, logs.String())
		}
	}
}

// syncBuf is a bytes.Buffer safe for concurrent writes, for logs.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
