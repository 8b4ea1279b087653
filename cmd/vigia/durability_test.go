package main

// End-to-end durability tests: what the server acknowledged survives
// SIGKILL, at rest and under load, and SIGTERM stops it cleanly.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// logBatch pipelines LOG id <from..to-1>.25 at one sample per second from
// baseSec and fails unless every one gets a 201.
func logBatch(t *testing.T, c *nativeConn, id string, from, to int) {
	t.Helper()
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "LOG %s %d.25 %d\n", id, i, baseSec+i)
	}
	got, err := pipeline(c.nc, b.String(), to-from, nil)
	if err != nil {
		t.Fatalf("LOG %s %d..%d: %d replies, then %v", id, from, to, len(got), err)
	}
	for i, r := range got {
		if r != wantInserted+"\n" {
			t.Fatalf("LOG %s %d: %q", id, from+i, r)
		}
	}
}

// expectSeries checks that id holds exactly the samples logBatch(0, n)
// logs: n of them, with their values, one per second.
func expectSeries(t *testing.T, c *nativeConn, id string, n int) {
	t.Helper()
	c.expect(fmt.Sprintf("QUERY %s COUNT 100000", id), fmt.Sprintf("200 [%d]", n))
	vs := replyValues(t, c.do(fmt.Sprintf("QUERY %s LAST 1 %d", id, baseSec)))
	if len(vs) != n {
		t.Fatalf("%s: %d values, want %d", id, len(vs), n)
	}
	for i, v := range vs {
		if v != float64(i)+0.25 {
			t.Fatalf("%s: value %d is %v, want %d.25", id, i, v, i)
		}
	}
}

var replayedRE = regexp.MustCompile(`replayed_samples=(\d+)`)

// replayed returns the replayed_samples the server logged at its last
// start.
func (s *testServer) replayed() int {
	s.t.Helper()
	m := replayedRE.FindAllStringSubmatch(s.log(), -1)
	if m == nil {
		s.t.Fatalf("the server's log does not tell how many samples it replayed:\n%s", s.log())
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// TestKillKeepsAcknowledged writes acknowledged samples, some flushed into
// parts and some only in the WAL, SIGKILLs the server, restarts it on the
// same data dir: every sample is there, with its value.
func TestKillKeepsAcknowledged(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir)
	c := s.dial()
	// Many series, half of them created before the flush, half after.
	const names = 3000
	logNames := func(from, to int) {
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, "LOG dur.name.%04d %d %d\n", i, i, baseSec+i)
		}
		got, err := pipeline(c.nc, b.String(), to-from, nil)
		if err != nil || strings.Join(got, "") != strings.Repeat(wantInserted+"\n", to-from) {
			t.Fatalf("LOG dur.name.%04d to %04d: %d replies, %v", from, to-1, len(got), err)
		}
	}
	logBatch(t, c, "dur.a", 0, 1000)
	logNames(0, names/2)
	if code, body := httpPost(t, "http://"+s.http+"/api/v1/admin/flush"); code != 200 {
		t.Fatalf("flush: %d %s", code, body)
	}
	logBatch(t, c, "dur.a", 1000, 2000)
	logNames(names/2, names)
	logBatch(t, c, "dur.b", 0, 10)
	for i := range 5 {
		c.expect(fmt.Sprintf("LOG dur.single %d.25 %d", i, baseSec+i), wantInserted)
	}
	s.kill()

	s.restart()
	if n := s.replayed(); n < 1015+names/2 {
		t.Errorf("replayed_samples=%d after SIGKILL, want at least the %d samples logged after the flush", n, 1015+names/2)
	}
	c = s.dial()
	expectSeries(t, c, "dur.a", 2000)
	expectSeries(t, c, "dur.b", 10)
	expectSeries(t, c, "dur.single", 5)
	var want []string
	for i := range names {
		want = append(want, fmt.Sprintf("%q", fmt.Sprintf("dur.name.%04d", i)))
	}
	c.expect("METRICS dur.name.", "200 ["+strings.Join(want, ",")+"]")
	var b strings.Builder
	for i := range names {
		fmt.Fprintf(&b, "QUERY dur.name.%04d SUM 100000\n", i)
	}
	got, err := pipeline(c.nc, b.String(), names, nil)
	if err != nil {
		t.Fatalf("QUERY dur.name.*: %d replies, %v", len(got), err)
	}
	for i, r := range got {
		if want := fmt.Sprintf("200 [%d.0]\n", i); r != want {
			t.Fatalf("QUERY dur.name.%04d SUM: %q, want %q", i, r, want)
		}
	}

	// And once more: a kill right after the restart loses nothing either.
	logBatch(t, c, "dur.c", 0, 100)
	s.kill()
	s.restart()
	c = s.dial()
	expectSeries(t, c, "dur.a", 2000)
	expectSeries(t, c, "dur.c", 100)
}

// loadWriter pipelines LOG id <seq> at one sample per second, seq 0, 1,
// 2, ... until the connection breaks, counting the LOG lines handed to
// the kernel and the 201s read back, in order.
type loadWriter struct {
	id        string
	attempted atomic.Int64 // LOG lines passed to Write (some may be lost)
	acked     atomic.Int64 // 201 replies read
	err       error        // a reply other than 201, or nil
}

func (w *loadWriter) run(addr string, total *atomic.Int64) {
	w.err = pipelineLOGs(addr, w.id, func(b []byte, seq int) ([]byte, int) {
		for i := range 50 {
			b = fmt.Appendf(b, "LOG %s %d %d\n", w.id, seq+i, baseSec+seq+i)
		}
		return b, 50
	}, &w.attempted, &w.acked, total)
}

// pipelineLOGs dials addr and writes the chunks of LOG lines next appends
// (next(b, sent) appends lines sent, sent+1, ... and says how many; 0
// ends the writing), counting in attempted the lines handed to Write,
// while it reads the 201s in order, counting them in acked and total. It
// returns when the connection breaks (the server is killed), after its
// writer stopped, with the first reply other than 201 or a dial error.
func pipelineLOGs(addr, name string, next func(b []byte, sent int) ([]byte, int), attempted, acked, total *atomic.Int64) error {
	nc, err := net.DialTimeout("tcp", addr, replyTimeout)
	if err != nil {
		return err
	}
	// The kill ends both loops: reads and writes fail once the server is
	// gone. The deadline only bounds a hung server.
	nc.SetDeadline(time.Now().Add(2 * time.Minute))
	wrote := make(chan struct{})
	defer func() {
		nc.Close()
		<-wrote
	}()
	go func() {
		defer close(wrote)
		var b []byte
		for sent := 0; ; {
			var n int
			if b, n = next(b[:0], sent); n == 0 {
				return
			}
			sent += n
			// Counted before the write: a write cut by the kill may have
			// sent part of the chunk.
			attempted.Store(int64(sent))
			if _, err := nc.Write(b); err != nil {
				return
			}
		}
	}()
	br := bufio.NewReaderSize(nc, 1<<16)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return nil
		}
		if line != wantInserted+"\n" {
			return fmt.Errorf("%s: reply %d is %q", name, acked.Load(), line)
		}
		acked.Add(1)
		total.Add(1)
	}
}

// checkLoad checks that every sample w got a 201 for is stored with its
// value, and that what else is stored is samples w sent.
func checkLoad(t *testing.T, c *nativeConn, w *loadWriter) {
	t.Helper()
	acked, attempted := int(w.acked.Load()), int(w.attempted.Load())
	reply := c.do(fmt.Sprintf("QUERY %s LAST 1 %d", w.id, baseSec))
	if reply == wantNotFound+"\n" && acked == 0 {
		return
	}
	vs := replyValues(t, reply)
	if len(vs) < acked || len(vs) > attempted {
		t.Errorf("%s: %d samples stored, %d acknowledged, %d sent", w.id, len(vs), acked, attempted)
	}
	for i, v := range vs {
		if i < acked && v != float64(i) {
			t.Errorf("%s: acknowledged sample %d has value %v, want %d", w.id, i, v, i)
			return
		}
		if v != float64(int(v)) || v < 0 || int(v) >= attempted || (i > 0 && v <= vs[i-1]) {
			t.Errorf("%s: stored value %d is %v, not one that was sent once (after %v)", w.id, i, v, vs[max(i-1, 0)])
			return
		}
	}
	c.expect(fmt.Sprintf("QUERY %s COUNT 1 %d", w.id, baseSec),
		"200 ["+strings.TrimSuffix(strings.Repeat("1, ", len(vs)), ", ")+"]")
}

// TestKillUnderLoad SIGKILLs the server while several connections pipeline
// LOGs and flushes of the head into parts are requested one after the
// other, at a random point of the load, three times on one data dir: after
// each restart every sample that got a 201 is there.
func TestKillUnderLoad(t *testing.T) {
	t.Parallel()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 3))
	s := startServer(t, t.TempDir())
	const cycles, conns = 3, 4
	var all []*loadWriter
	for cycle := range cycles {
		if cycle > 0 {
			s.restart()
		}
		var total atomic.Int64
		var wg sync.WaitGroup
		var ws []*loadWriter
		for ci := range conns {
			w := &loadWriter{id: fmt.Sprintf("load.%d.%d", cycle, ci)}
			ws = append(ws, w)
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.run(s.native, &total)
			}()
		}
		// Flushes until the kill, so that it may land in one.
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: replyTimeout}
			for {
				resp, err := hc.Post("http://"+s.http+"/api/v1/admin/flush", "text/plain", nil)
				if err != nil {
					return
				}
				resp.Body.Close()
			}
		}()
		// Kill once a random number of samples is acknowledged, while the
		// writers keep writing.
		killAt := int64(1000 + rng.IntN(20000))
		deadline := time.Now().Add(time.Minute)
		for total.Load() < killAt && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if total.Load() < killAt {
			t.Fatalf("cycle %d: only %d of %d samples acknowledged in a minute", cycle, total.Load(), killAt)
		}
		s.kill()
		wg.Wait()
		var acked []int64
		for _, w := range ws {
			if w.err != nil {
				t.Fatal(w.err)
			}
			acked = append(acked, w.acked.Load())
		}
		t.Logf("cycle %d: killed after %d acknowledged; per connection %v", cycle, total.Load(), acked)
		all = append(all, ws...)
	}
	s.restart()
	c := s.dial()
	for _, w := range all {
		checkLoad(t, c, w)
	}
}

// TestGracefulStop: SIGTERM while a connection pipelines LOGs answers what
// the server read, flushes, exits 0, and everything acknowledged is there
// after a restart, without a WAL replay.
func TestGracefulStop(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--http-addr", "off")
	c := s.dial()
	logBatch(t, c, "term.a", 0, 500)

	w := &loadWriter{id: "term.load"}
	var total atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(s.native, &total)
	}()
	deadline := time.Now().Add(time.Minute)
	for total.Load() < 1000 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if code := s.terminate(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	<-done
	if w.err != nil {
		t.Errorf("pipelining through the SIGTERM: %v", w.err)
	}
	if !strings.Contains(s.log(), "flushed") {
		t.Errorf("the log does not say the store was flushed:\n%s", s.log())
	}
	t.Logf("SIGTERM after %d acknowledged samples", w.acked.Load())

	s.restart()
	if n := s.replayed(); n != 0 {
		t.Errorf("replayed_samples=%d after a clean stop, want 0 (the head flushed into parts)", n)
	}
	c = s.dial()
	expectSeries(t, c, "term.a", 500)
	checkLoad(t, c, w)
	if code := s.terminate(); code != 0 {
		t.Errorf("exit status %d after SIGTERM of an idle server, want 0", code)
	}
}

// TestOutOfOrderSamples logs samples out of time order, before and after a
// flush into parts, into two day partitions: QUERY sees them in time
// order, and still does after SIGKILL and after SIGTERM.
func TestOutOfOrderSamples(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	c := s.dial()
	at := func(sec int) string { return fmt.Sprint(baseSec + sec) }
	c.expect("LOG ooo 1 "+at(10), wantInserted)
	c.expect("LOG ooo 2 "+at(0), wantInserted)
	c.expect("LOG ooo 3 "+at(5), wantInserted)
	c.expect("QUERY ooo LAST 5", "200 [2.0, 3.0, 1.0]")
	c.expect("QUERY ooo COUNT 5", "200 [1, 1, 1]")
	if code, body := httpPost(t, "http://"+s.http+"/api/v1/admin/flush"); code != 200 {
		t.Fatalf("flush: %d %s", code, body)
	}
	c.expect("LOG ooo 4 "+at(7), wantInserted)
	c.expect("LOG ooo 5 "+at(3-86400), wantInserted) // the day before
	c.expect("LOG ooo 6 "+at(2), wantInserted)
	check := func(when string) {
		t.Helper()
		for _, tc := range []struct{ req, want string }{
			// [0, 5): 2 then 6; [5, 10): 3 then 4; [10, 15): 1.
			{"QUERY ooo LAST 5 " + at(0), "200 [6.0, 4.0, 1.0]"},
			{"QUERY ooo MIN 5 " + at(0), "200 [2.0, 3.0, 1.0]"},
			// From the first sample, the day before: [-86397, 3) holds
			// three samples, [3, 86403) the other three.
			{"QUERY ooo COUNT 86400", "200 [3, 3]"},
			{"QUERY ooo SUM 86400", "200 [13.0, 8.0]"},
			{"QUERY ooo LAST 1", "200 [5.0, 2.0, 6.0, 3.0, 4.0, 1.0]"},
		} {
			if got := c.do(tc.req); got != tc.want+"\n" {
				t.Errorf("%s: %s: got %q, want %q", when, tc.req, got, tc.want+"\n")
			}
		}
	}
	check("before any restart")
	s.kill()
	s.restart()
	c = s.dial()
	check("after SIGKILL")
	if code := s.terminate(); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
	s.restart()
	c = s.dial()
	check("after SIGTERM")
}

// TestArchivedQueries logs samples older than the raw retention, lets
// retention fold them into the 1-minute, 1-hour and 1-day archives, and
// checks that QUERY gives the same answers from the archives as it gave
// from the raw samples, also after a restart.
func TestArchivedQueries(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir, "--http-addr", "off")
	day := baseSec - 28*86400 // midnight UTC 30 days ago: in the 1m archive's 90 days
	const old = 1650931200    // 2022-04-26: only in the 1d archive's 10 years
	at := func(base, sec int) string { return fmt.Sprint(base + sec) }
	var b strings.Builder
	for _, l := range []struct {
		base, sec int
		v         string
	}{
		{day, 0, "1"}, {day, 30, "3"}, {day, 70, "5"}, {day, 7200, "7"}, {day, 7230, "9"},
		{old, 0, "10"}, {old, 60, "20"},
		{baseSec, 0, "100"},
	} {
		fmt.Fprintf(&b, "LOG arch %s %s\n", l.v, at(l.base, l.sec))
	}
	c := s.dial()
	if got, err := pipeline(c.nc, b.String(), 8, nil); err != nil || strings.Join(got, "") != strings.Repeat(wantInserted+"\n", 8) {
		t.Fatalf("LOGs: %q, %v", got, err)
	}
	queries := []struct{ req, want string }{
		{"QUERY arch AVG 60 " + at(day, 0), "200 [2.0, 5.0, 8.0, 100.0]"},
		{"QUERY arch COUNT 60 " + at(day, 0), "200 [2, 1, 2, 1]"},
		{"QUERY arch LAST 60 " + at(day, 0) + " " + at(day, 86400), "200 [3.0, 5.0, 9.0]"},
		{"QUERY arch MIN 3600 " + at(day, 0) + " " + at(day, 86400), "200 [1.0, 7.0]"},
		{"QUERY arch MAX 3600 " + at(day, 0) + " " + at(day, 86400), "200 [5.0, 9.0]"},
		// One window over the archived day, one over the raw sample.
		{"QUERY arch SUM 86400 " + at(day, 0), "200 [25.0, 100.0]"},
		{"QUERY arch SUM 86400 2022-04-26 2022-04-27", "200 [30.0]"},
		{"QUERY arch COUNT 86400 2022-04-26", "200 [2, 5, 1]"},
	}
	check := func(when string) {
		t.Helper()
		for _, q := range queries {
			if got := c.do(q.req); got != q.want+"\n" {
				t.Errorf("%s: %s: got %q, want %q", when, q.req, got, q.want+"\n")
			}
		}
	}
	check("from raw samples")

	// A restart with a short flush interval flushes the replayed samples
	// at once, and the retention pass that follows archives the old days.
	s.kill()
	s = startServer(t, dir, "--http-addr", "off", "--flush-interval", "100ms")
	deadline := time.Now().Add(startTimeout)
	for !strings.Contains(s.log(), "retention dropped partitions") {
		if time.Now().After(deadline) {
			t.Fatalf("no retention pass within %v:\n%s", startTimeout, s.log())
		}
		time.Sleep(10 * time.Millisecond)
	}
	c = s.dial()
	check("from the archives")

	s.kill()
	s.restart()
	c = s.dial()
	check("from the archives after SIGKILL")
}

// TestStopWithOpenConnections: SIGTERM and SIGINT stop a server that has
// idle and SUBSCRIBEd connections open, with exit status 0, and those
// connections are closed cleanly.
func TestStopWithOpenConnections(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			s := startServer(t, t.TempDir())
			c := s.dial()
			c.expect("LOG open.conns 1 "+fmt.Sprint(baseSec), wantInserted)
			idle := s.dial()
			idle.expect("PING", wantPong)
			sub := s.dial()
			sub.expect("SUBSCRIBE", "200 Subscribed")
			if code := s.signal(sig); code != 0 {
				t.Errorf("exit status %d after %v, want 0", code, sig)
			}
			for _, nc := range []*nativeConn{c, idle, sub} {
				nc.expectClosed("open connection at " + sig.String())
			}
			s.restart()
			s.dial().expect("QUERY open.conns COUNT 1", "200 [1]")
		})
	}
}

// TestSecondSignal: a second SIGINT during a graceful shutdown that waits
// (here for an export whose client reads nothing) ends the process at
// once, and every acknowledged sample is there after the restart.
func TestSecondSignal(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	const n = 600000 // a CSV export of about 20 MB: more than the loopback buffers hold
	logBatch(t, s.dial(), "second.signal", 0, n)
	nc, err := net.Dial("tcp", s.http)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	io.WriteString(nc, "GET /api/v1/export?name=second.signal HTTP/1.1\r\nHost: vigia\r\n\r\n")
	nc.SetReadDeadline(time.Now().Add(replyTimeout))
	if _, err := io.ReadFull(nc, make([]byte, 1024)); err != nil {
		t.Fatalf("export: %v", err)
	}
	syscall.Kill(s.cmd.Process.Pid, syscall.SIGTERM)
	// Once the shutdown is under way, the server waits for the export.
	waitFor(t, exitTimeout, "a shutdown under way after SIGTERM", func() bool {
		if !s.running() {
			t.Fatalf("the server exited after SIGTERM while an export was stalled:\n%s", s.log())
		}
		return strings.Contains(s.log(), `msg="shutting down"`)
	})
	time.Sleep(500 * time.Millisecond)
	if !s.running() {
		t.Fatalf("the server exited %v after SIGTERM while an export was stalled; want it waiting", s.cmd.ProcessState)
	}
	// The second signal kills it. The server gives SIGINT back its default
	// action from another goroutine than the one that logged the
	// shutdown, so a SIGINT can still be caught and ignored just after
	// that line: it is sent again until the process ends. A server that
	// went on with its shutdown instead would end by itself, after its
	// shutdown timeout, and not by the signal.
	sent := 0
	for deadline := time.Now().Add(exitTimeout); s.running(); {
		if time.Now().After(deadline) {
			t.Fatalf("the server still runs %v after a second signal:\n%s", exitTimeout, s.log())
		}
		syscall.Kill(s.cmd.Process.Pid, syscall.SIGINT)
		sent++
		select {
		case <-s.exited:
		case <-time.After(time.Second):
		}
	}
	if ws, ok := s.cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGINT {
		t.Errorf("exit %v after %d SIGINTs, want death by SIGINT", s.cmd.ProcessState, sent)
	} else if sent > 1 {
		t.Logf("the server ended on SIGINT number %d", sent)
	}
	s.restart()
	s.dial().expect("QUERY second.signal COUNT 10000000", fmt.Sprintf("200 [%d]", n))
}

// TestTornWALTail appends a torn record to the last write-ahead log
// segment of a killed server, as a crash in the middle of a write leaves
// it: the server starts, says it dropped a torn tail, keeps every
// acknowledged sample, and what it acknowledges after the restart survives
// the next kill too.
func TestTornWALTail(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s := startServer(t, dir, "--http-addr", "off")
	c := s.dial()
	logBatch(t, c, "torn.a", 0, 300)
	s.kill()

	segs, err := filepath.Glob(filepath.Join(dir, "metrics", "wal", "*.wal"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("no WAL segment in %s/metrics/wal (%v): see docs/format/wal.md", dir, err)
	}
	slices.Sort(segs)
	last := segs[len(segs)-1]
	f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	// A frame header announcing 4096 bytes, a wrong CRC-32C, and only part
	// of the body.
	torn := append([]byte{0, 16, 0, 0, 0xde, 0xad, 0xbe, 0xef, 2}, bytes.Repeat([]byte{0x55}, 100)...)
	if _, err := f.Write(torn); err != nil {
		t.Fatal(err)
	}
	f.Close()

	s.restart()
	if !regexp.MustCompile(`torn_tails=[1-9]`).MatchString(s.log()) {
		t.Errorf("the log does not report the torn WAL tail:\n%s", s.log())
	}
	c = s.dial()
	expectSeries(t, c, "torn.a", 300)
	logBatch(t, c, "torn.b", 0, 200)
	s.kill()
	s.restart()
	c = s.dial()
	expectSeries(t, c, "torn.a", 300)
	expectSeries(t, c, "torn.b", 200)
}
