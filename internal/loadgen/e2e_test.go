package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	buildBin  string
	buildErr  error
	buildDir  string
)

// vigiaBinary builds cmd/vigia once per test binary and returns its path.
func vigiaBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := osMkdirTemp()
		if err != nil {
			buildErr = err
			return
		}
		buildDir = dir
		buildBin = filepath.Join(dir, "vigia")
		out, err := exec.Command("go", "build", "-o", buildBin, "github.com/vigia-mon/vigia/cmd/vigia").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// startTestServer starts the real binary in a fresh data dir and stops it at
// the end of the test.
func startTestServer(t *testing.T, o ServerOptions) *Server {
	t.Helper()
	o.Bin = vigiaBinary(t)
	if o.DataDir == "" {
		o.DataDir = filepath.Join(t.TempDir(), "data")
	}
	srv, err := StartServer(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(30 * time.Second); err != nil {
			t.Errorf("stop server: %v", err)
		}
	})
	return srv
}

func TestBenchEndToEnd(t *testing.T) {
	srv := startTestServer(t, ServerOptions{Args: []string{"--retention", "8760h"}})
	var progress bytes.Buffer
	res, err := Bench(context.Background(), BenchOptions{
		Addr: srv.NativeAddr, HTTPAddr: srv.HTTPAddr, PID: srv.PID(),
		Data:          Dataset{Series: 20, Points: 50},
		Conns:         3,
		PacedDuration: 300 * time.Millisecond,
		LongPoints:    5000,
		Queries:       3,
		Progress:      &progress,
	})
	if err != nil {
		t.Fatalf("%v\nprogress:\n%s\nserver:\n%s", err, progress.String(), srv.Output())
	}
	if res.Ingest.Samples != 1000 || !(res.Ingest.SamplesPerSec > 0) {
		t.Errorf("ingest: %+v, want 1000 samples acknowledged", res.Ingest)
	}
	if d := res.Disk; d == nil || d.Samples != 1000 || !(d.BytesPerSample > 0) || d.WALBytes != 0 ||
		d.Parts < 1 || d.SettledParts < 1 || !(d.SettledBytesPerSample > 0) {
		t.Errorf("disk: %+v, want 1000 samples flushed and some bytes per sample", d)
	}
	if p := res.Paced; p == nil || p.Samples == 0 || p.Measured == 0 || !(p.P99Ms >= p.P50Ms) || !(p.MaxMs >= p.P99Ms) {
		t.Errorf("latency: %+v, want requests acknowledged and measured", p)
	}
	if q := res.Query; q == nil || q.Samples != 5000 || q.Windows != 84 || q.Head.N != 3 || q.Parts.N != 3 {
		t.Errorf("query: %+v, want 84 windows over 5000 samples, timed 3 times from head and parts", q)
	}
	if m := res.Memory; m == nil || m.PeakAfterIngest <= 0 || m.Peak < m.PeakAfterIngest {
		t.Errorf("memory: %+v", m)
	}

	// The server holds the data set's values: the counter's maximum is its
	// 50th point, the gauge's first window its first point.
	s1, s0 := NewSeries("bench", DefaultSeed, 1), NewSeries("bench", DefaultSeed, 0)
	var last float64
	for range 50 {
		last = s1.Next()
	}
	first := s0.AppendValue(nil, s0.Next())
	qc, err := dialQuery(context.Background(), srv.NativeAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer qc.close()
	from := res.Start
	for req, want := range map[string]string{
		fmt.Sprintf("QUERY bench.counter.s000001 MAX 50 %d %d", from, from+50): fmt.Sprintf("200 [%d.0]", int64(last)),
		fmt.Sprintf("QUERY bench.gauge.s000000 MAX 1 %d %d", from, from+1):     fmt.Sprintf("200 [%s]", strings.TrimRight(strings.TrimRight(string(first), "0"), ".")),
		fmt.Sprintf("QUERY bench.gauge.s000000 COUNT 50 %d %d", from, from+50): "200 [50]",
	} {
		got, _, err := qc.do(req, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(want, "200 [") || !equalReply(string(got), want) {
			t.Errorf("%s: %q, want %q", req, got, want)
		}
	}

	var report bytes.Buffer
	if err := res.WriteReport(&report); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"samples/s acknowledged", "bytes/sample", "LOG latency", "QUERY long.gauge.s000000 MAX 60", "peak"} {
		if !strings.Contains(report.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, report.String())
		}
	}

	// Run again on the same server: its data is no longer this run's
	// alone, so the disk figure is not reported (it came out negative).
	progress.Reset()
	res, err = Bench(context.Background(), BenchOptions{
		Addr: srv.NativeAddr, HTTPAddr: srv.HTTPAddr,
		Data: Dataset{Series: 20, Points: 50, Prefix: "again"}, Conns: 1,
		PacedDuration: -1, LongPoints: -1, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("second run: %v\nprogress:\n%s", err, progress.String())
	}
	if res.Disk != nil || !strings.Contains(progress.String(), "disk: not measured") {
		t.Errorf("second run on a server holding data: disk %+v\nprogress:\n%s", res.Disk, progress.String())
	}
}

// equalReply compares two "200 [v]" replies by value, so that 25.4 and
// 25.40 match.
func equalReply(got, want string) bool {
	if got == want {
		return true
	}
	g, err1 := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(got, "200 ["), "]"), 64)
	w, err2 := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(want, "200 ["), "]"), 64)
	return err1 == nil && err2 == nil && g == w
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var totalAckedRE = regexp.MustCompile(`total_acked=(\d+)`)

// lastTotalAcked returns the last total_acked of Load's report lines.
func lastTotalAcked(out string) int64 {
	m := totalAckedRE.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return -1
	}
	n, _ := strconv.ParseInt(m[len(m)-1][1], 10, 64)
	return n
}

// waitFor polls cond every 20 ms until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestLoadSurvivesRestart runs test clients against a server, stops the
// server, starts it again on the same address, and checks that the clients
// reconnect and go on, and that Load stops cleanly.
func TestLoadSurvivesRestart(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	srv := startTestServer(t, ServerOptions{DataDir: dir})
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		tot LoadTotals
		err error
	}
	done := make(chan result, 1)
	go func() {
		tot, err := Load(ctx, LoadOptions{
			Addr: srv.NativeAddr, Clients: 2, Rate: 200, Metrics: 3, Prefix: "lt",
			Interval: 50 * time.Millisecond, Out: &out, Logger: discardLogger(),
		})
		done <- result{tot, err}
	}()
	waitFor(t, "acknowledged requests", 10*time.Second, func() bool { return lastTotalAcked(out.String()) >= 20 })
	if err := srv.Stop(30 * time.Second); err != nil {
		t.Fatal(err)
	}
	before := lastTotalAcked(out.String())
	waitFor(t, "the clients to notice", 10*time.Second, func() bool {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		return strings.Contains(lines[len(lines)-1], "conns=0/2")
	})
	srv2 := startTestServer(t, ServerOptions{DataDir: dir, NativeAddr: srv.NativeAddr, HTTPAddr: srv.HTTPAddr})
	// Both clients reconnect, each after its own backoff: wait for both
	// (conns=2/2), not only for the first one's acknowledgements.
	waitFor(t, "both clients to reconnect and acknowledgements after the restart", 30*time.Second, func() bool {
		lines := strings.Split(strings.TrimSpace(out.String()), "\n")
		return strings.Contains(lines[len(lines)-1], "conns=2/2") && lastTotalAcked(out.String()) >= before+20
	})
	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Load did not return after its context was cancelled")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	tot := r.tot
	if tot.Reconnects < 2 || tot.Errors < 2 || tot.Acked < uint64(before)+20 || tot.Sent < tot.Acked || tot.P99 <= 0 {
		t.Errorf("totals %+v: want 2 reconnects, errors while the server was down, and acknowledgements on both sides\n%s", tot, out.String())
	}
	// The requests due while the server was down were skipped, and
	// counted.
	if tot.Skipped == 0 {
		t.Errorf("totals %+v: want the requests due during the outage counted as skipped", tot)
	}
	if !strings.Contains(out.String(), "summary: clients=2") {
		t.Errorf("no summary line:\n%s", out.String())
	}
	// What was acknowledged is stored.
	qc, err := dialQuery(context.Background(), srv2.NativeAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer qc.close()
	got, _, err := qc.do("QUERY lt.c1.m2 COUNT 100000", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(string(got), "200 ["), "]")); err != nil || n < 2 {
		t.Errorf("QUERY lt.c1.m2 COUNT: %q", got)
	}
}

// The latency phase tells the seconds in which the server flushed or
// merged from the others, by how its time spent doing so grew.
func TestPacedRunSplitsBusySeconds(t *testing.T) {
	srv := startTestServer(t, ServerOptions{})
	var buf []byte
	var ends []int
	buf = AppendLOGs(buf, &ends, []*Series{NewSeries("split", DefaultSeed, 0)}, time.Now().Unix()-10000, 0, 5000)
	calls := 0
	background := func() (float64, float64, bool) {
		// Flushing in the second second, merging in the third,
		// nothing in the fourth.
		calls++
		switch calls {
		case 1, 2:
			return 0, 0, true
		case 3:
			return 0.2, 0, true
		default:
			return 0.2, 0.5, true
		}
	}
	var progress bytes.Buffer
	res, err := pacedRun(context.Background(), srv.NativeAddr, []pacedSource{{buf: buf, ends: ends}}, 500, 4800*time.Millisecond,
		100*time.Millisecond, 30*time.Second, &progress, background)
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if res.busySecs != 2 || res.quietSecs < 1 || res.busy.N == 0 || res.quiet.N == 0 {
		t.Errorf("%d busy seconds (%d requests), %d quiet (%d), want 2 and at least 1\n%s", res.busySecs, res.busy.N, res.quietSecs, res.quiet.N, progress.String())
	}
	if !strings.Contains(progress.String(), "the server flushing 0.20 s, merging 0.00 s") {
		t.Errorf("progress does not say the server flushed:\n%s", progress.String())
	}
}

// TestLoadCountsBusy: a server at its --max-conns refuses the clients'
// connections with a 503, sent at once, before or after their first
// request; each refusal counts as busy, not as an error or a protocol
// error.
func TestLoadCountsBusy(t *testing.T) {
	srv := startTestServer(t, ServerOptions{Args: []string{"--max-conns", "1"}})
	// Hold the one connection (once StartServer's PING has released it).
	waitFor(t, "a connection to the server", 10*time.Second, func() bool {
		qc, err := dialQuery(context.Background(), srv.NativeAddr)
		if err != nil {
			return false
		}
		if got, _, err := qc.do("PING", 5*time.Second); err != nil || string(got) != "200 PONG" {
			qc.close()
			return false
		}
		t.Cleanup(qc.close)
		return true
	})
	var out, logs syncBuffer
	tot, err := Load(context.Background(), LoadOptions{
		Addr: srv.NativeAddr, Clients: 3, Rate: 100, Duration: 1500 * time.Millisecond,
		Out: &out, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if tot.Busy < 3 || tot.Errors != 0 || tot.Acked != 0 {
		t.Errorf("totals %+v: want every connection counted busy, no errors\n%s\n%s", tot, out.String(), logs.String())
	}
	if strings.Contains(logs.String(), "protocol error") {
		t.Errorf("a refusal logged as a protocol error:\n%s", logs.String())
	}
}

// TestLoadCountsSkippedWhileDown: the requests due while a client cannot
// connect count as skipped, also when the server never comes up or is
// still down when the run ends, so that sent + skipped is what was due.
func TestLoadCountsSkippedWhileDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	var out syncBuffer
	tot, err := Load(context.Background(), LoadOptions{
		Addr: gone, Clients: 2, Rate: 100, Duration: time.Second, Out: &out, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	// 100 requests due per client in the second.
	if tot.Sent != 0 || tot.Skipped != 200 || tot.Errors == 0 {
		t.Errorf("totals %+v: want 200 skipped, none sent, failed connects\n%s", tot, out.String())
	}
}

// TestLoadSendsWhatIsDue: a run of --duration D at --rate R sends the
// R*D requests due in it (not one more, due as it ends), each sent or
// skipped.
func TestLoadSendsWhatIsDue(t *testing.T) {
	srv := startTestServer(t, ServerOptions{})
	var out syncBuffer
	tot, err := Load(context.Background(), LoadOptions{
		Addr: srv.NativeAddr, Clients: 2, Rate: 20, Duration: time.Second, Out: &out, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if tot.Sent+tot.Skipped != 40 || tot.Acked != tot.Sent || tot.Errors != 0 {
		t.Errorf("totals %+v: want 40 requests sent or skipped, every one sent acknowledged\n%s", tot, out.String())
	}
}

// TestLoadStopsOnSilentServer: stopped while its requests are unanswered
// (a hung server), a client waits a moment for the replies, counts the
// requests sent as lost and the ones due before the stop and not sent as
// skipped; not those that fall due during the wait.
func TestLoadStopsOnSilentServer(t *testing.T) {
	// Cancelled as by Ctrl-C (a context without a deadline), a second
	// after the first request arrived, so that the run lasts at least a
	// second however late the client started.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once sync.Once
	addr := serveTCP(t, func(nc net.Conn) {
		// Reads everything, answers nothing.
		if n, _ := nc.Read(make([]byte, 1)); n > 0 {
			once.Do(func() { time.AfterFunc(time.Second, cancel) })
		}
		io.Copy(io.Discard, nc)
	})
	var out syncBuffer
	began := time.Now()
	tot, err := Load(ctx, LoadOptions{
		Addr: addr, Rate: 100, Window: 50, Out: &out, Logger: discardLogger(),
	})
	if err != nil {
		t.Fatal(err)
	}
	// At least the 100 due in the second from the first request to the
	// cancel: 50 sent (the window), the rest skipped. At most those due
	// until Load began its wait of stopGrace for the last replies, which
	// must not count: that would be 200 more.
	elapsed := time.Since(began)
	most := uint64(math.Ceil((elapsed-stopGrace).Seconds()*100)) + 1
	t.Logf("Load returned after %v: %d sent, %d skipped; at most %d were due", elapsed, tot.Sent, tot.Skipped, most)
	if tot.Sent != 50 || tot.Lost != 50 || tot.Sent+tot.Skipped < 100 || tot.Sent+tot.Skipped > most {
		t.Errorf("totals %+v: want 50 sent and lost, and from 100 to %d sent or skipped\n%s", tot, most, out.String())
	}
}
