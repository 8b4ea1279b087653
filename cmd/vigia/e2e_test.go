package main

// End-to-end tests of the server under load and hostile input: pipelining,
// many connections, over-long lines, admission control, idle timeouts,
// garbage bytes, and the HTTP API.

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// pipeline writes every request on nc from one goroutine (in chunks of
// the sizes chunk returns, or at once when chunk is nil) while reading the
// replies, and returns the reply lines, each with its "\n", until want
// lines came, the server closed the connection or the read deadline
// passed. Write errors are not reported: a server may close a connection
// it refuses before reading everything.
func pipeline(nc net.Conn, reqs string, want int, chunk func() int) ([]string, error) {
	go func() {
		nc.SetWriteDeadline(time.Now().Add(replyTimeout))
		if chunk == nil {
			io.WriteString(nc, reqs)
			return
		}
		for b := reqs; len(b) > 0; {
			n := min(chunk(), len(b))
			if _, err := io.WriteString(nc, b[:n]); err != nil {
				return
			}
			b = b[n:]
		}
	}()
	r := bufio.NewReader(nc)
	var replies []string
	for len(replies) < want {
		nc.SetReadDeadline(time.Now().Add(replyTimeout))
		line, err := r.ReadString('\n')
		if err != nil {
			if len(line) > 0 {
				return replies, fmt.Errorf("partial reply line %q: %w", line, err)
			}
			return replies, err
		}
		replies = append(replies, line)
	}
	return replies, nil
}

// pipelineModel builds n random requests over metrics prefix.0 to
// prefix.4, LOGs, QUERYs and bad lines mixed, and the reply each must get
// in order: a QUERY sees every LOG before it.
func pipelineModel(rng *rand.Rand, prefix string, n int) (reqs string, replies []string) {
	var b strings.Builder
	count := map[string]int{}
	sum := map[string]int{}
	for i := range n {
		id := fmt.Sprintf("%s.%d", prefix, rng.IntN(5))
		var req, reply string
		switch k := rng.IntN(20); {
		case k < 11:
			v := rng.IntN(1000)
			req = fmt.Sprintf("LOG %s %d %s", id, v, secs(int64(baseSec)*1000+int64(i)))
			reply = wantInserted
			count[id]++
			sum[id] += v
		case k < 13:
			req = "QUERY " + id + " COUNT 86400"
			reply = fmt.Sprintf("200 [%d]", count[id])
			if count[id] == 0 {
				reply = wantNotFound
			}
		case k < 15:
			req = "QUERY " + id + " SUM 86400 " + fmt.Sprint(baseSec)
			reply = fmt.Sprintf("200 [%d.0]", sum[id])
			if count[id] == 0 {
				reply = wantNotFound
			}
		case k == 15:
			req, reply = "FOO "+id, wantCommands
		case k == 16:
			req, reply = "LOG "+id+" nan", wantLogUsage
		case k == 17:
			req, reply = "QUERY "+id+" AVG 0", wantQueryUsage
		case k == 18:
			req, reply = "", wantCommands
		default:
			req, reply = "PING", wantPong
		}
		b.WriteString(req)
		if rng.IntN(10) == 0 {
			b.WriteString("\r\n")
		} else {
			b.WriteString("\n")
		}
		replies = append(replies, reply+"\n")
	}
	return b.String(), replies
}

// TestPipelining writes thousands of mixed requests at once, then again
// in random chunks that split lines anywhere: every line gets exactly one
// reply, in order, and a QUERY sees the LOGs before it in the same batch.
func TestPipelining(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--http-addr", "off")
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	for _, tc := range []struct {
		name  string
		chunk func() int
	}{
		{"at-once", nil},
		{"chunks", func() int { return 1 + rng.IntN(300) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reqs, want := pipelineModel(rng, "pipe."+tc.name, 5000)
			c := s.dial()
			got, err := pipeline(c.nc, reqs, len(want), tc.chunk)
			if err != nil {
				t.Fatalf("after %d of %d replies: %v", len(got), len(want), err)
			}
			lines := strings.SplitAfter(reqs, "\n")
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("reply %d to %q: got %q, want %q", i, lines[i], got[i], want[i])
				}
			}
			c.expect("PING", wantPong)
		})
	}
	s.alive()
}

// TestConcurrentConnections runs 40 connections at once, each logging to
// its own metric and a shared one and querying its own count as it goes:
// every reply is right, and the totals match.
func TestConcurrentConnections(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--http-addr", "off")
	const conns, rounds = 40, 60
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for ci := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- concurrentClient(s.native, ci, rounds)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if t.Failed() {
		return
	}
	c := s.dial()
	c.expect("QUERY conc.shared COUNT 1000000", fmt.Sprintf("200 [%d]", conns*2*rounds))
	total := 0
	for ci := range conns {
		own := 0
		for i := range rounds {
			own += ci*1000 + i
		}
		c.expect(fmt.Sprintf("QUERY conc.%d SUM 1000000", ci), fmt.Sprintf("200 [%d.0]", own))
		total += 2 * own
	}
	c.expect("QUERY conc.shared SUM 1000000", fmt.Sprintf("200 [%d.0]", total))
}

// concurrentClient is one connection of TestConcurrentConnections.
func concurrentClient(addr string, ci, rounds int) error {
	nc, err := net.DialTimeout("tcp", addr, replyTimeout)
	if err != nil {
		return err
	}
	defer nc.Close()
	r := bufio.NewReader(nc)
	id := fmt.Sprintf("conc.%d", ci)
	for i := range rounds {
		v := ci*1000 + i
		ms := int64(baseSec)*1000 + int64(ci)*1_000_000 + int64(i)
		// Two LOGs and a QUERY in one write, then one LOG alone.
		reqs := []string{
			fmt.Sprintf("LOG %s %d %s\nLOG conc.shared %d %s\nQUERY %s COUNT 1000000\n", id, v, secs(ms), v, secs(ms), id),
			fmt.Sprintf("LOG conc.shared %d %s\n", v, secs(ms)),
		}
		wants := [][]string{
			{wantInserted + "\n", wantInserted + "\n", fmt.Sprintf("200 [%d]\n", i+1)},
			{wantInserted + "\n"},
		}
		for k, req := range reqs {
			nc.SetDeadline(time.Now().Add(replyTimeout))
			if _, err := io.WriteString(nc, req); err != nil {
				return fmt.Errorf("%s round %d: %v", id, i, err)
			}
			for _, want := range wants[k] {
				got, err := r.ReadString('\n')
				if err != nil {
					return fmt.Errorf("%s round %d: %v", id, i, err)
				}
				if got != want {
					return fmt.Errorf("%s round %d: %q got %q, want %q", id, i, req, got, want)
				}
			}
		}
	}
	return nil
}

// TestLongLine sends lines over 64 KiB: each gets its command's 400 usage
// line, then the connection is closed, while another connection goes on
// being served. A line of exactly 64 KiB is still a request.
func TestLongLine(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	other := s.dial()
	other.expect("PING", wantPong)
	const max = 64 << 10
	pad := func(prefix string, n int, fill string) string {
		return prefix + strings.Repeat(fill, n-len(prefix))
	}
	for _, tc := range []struct {
		name, line, want string
	}{
		{"LOG", pad("LOG big ", max+1, "1"), wantLogUsage},
		{"LOG long id", pad("LOG ", 3*max, "x") + " 1", wantLogUsage},
		{"QUERY", pad("QUERY big AVG 1 ", max+1, "2"), wantQueryUsage},
		{"NEW-ALERT", pad("NEW-ALERT big MAX 1 ", max+1, "9"), wantNewAlertUsage},
		{"unknown", pad("FOO ", max+1, "x"), wantCommands},
		{"blanks", pad("LOG x 1", max+1, " "), wantLogUsage},
		{"no newline", pad("QUERY ", 1<<20, "q"), wantQueryUsage},
		{"CRLF", pad("LOG big ", max+1, "1") + "\r", wantLogUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := s.dial()
			line := tc.line
			if tc.name != "no newline" {
				line += "\n"
			}
			// What follows the long line must not be executed.
			got, err := pipeline(c.nc, line+"LOG after.long 1\nPING\n", 3, nil)
			if len(got) != 1 || got[0] != tc.want+"\n" {
				t.Fatalf("replies %q (then %v), want %q and the close", got, err, tc.want+"\n")
			}
			if err != io.EOF {
				t.Fatalf("after the 400: %v, want the connection closed (EOF)", err)
			}
		})
	}
	// Exactly 64 KiB, with "\n" or "\r\n" after it, is a request.
	c := s.dial()
	c.expect(pad("LOG edge 1 ", max, " "), wantInserted)
	c.expect(pad("LOG edge 2 ", max, "\t")+"\r", wantInserted)
	c.expect("QUERY edge COUNT 100000", "200 [2]")

	other.expect("PING", wantPong)
	other.expect("QUERY after.long COUNT 1", wantNotFound)
	s.dial().expect("PING", wantPong)
	_, body := httpGet(t, "http://"+s.http+"/metrics")
	if v := metricValue(t, body, "vigia_native_long_lines_total"); v != 8 {
		t.Errorf("vigia_native_long_lines_total %v after 8 lines over 64 KiB", v)
	}
}

// TestMaxConns: with --max-conns 4 and four connections open, a fifth
// reads exactly the 503 line and is closed; once the four close, new
// connections are served.
func TestMaxConns(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--max-conns", "4")
	var open []*nativeConn
	for range 4 {
		c := s.dial()
		c.expect("PING", wantPong)
		open = append(open, c)
	}
	for _, withRequest := range []bool{false, true} {
		nc, err := net.DialTimeout("tcp", s.native, replyTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if withRequest {
			io.WriteString(nc, "LOG refused 1\nPING\n")
		}
		nc.SetReadDeadline(time.Now().Add(replyTimeout))
		got, err := io.ReadAll(nc)
		nc.Close()
		if string(got) != wantBusy+"\n" || err != nil {
			t.Errorf("fifth connection (request sent: %v) read %q (%v), want exactly %q and EOF", withRequest, got, err, wantBusy+"\n")
		}
	}
	_, body := httpGet(t, "http://"+s.http+"/metrics")
	if v := metricValue(t, body, "vigia_native_refused_connections_total"); v != 2 {
		t.Errorf("vigia_native_refused_connections_total %v after 2 connections refused", v)
	}
	for _, c := range open {
		c.expect("PING", wantPong)
		c.close()
	}
	// The server sees the four closes asynchronously: retry until four
	// new connections are all served.
	deadline := time.Now().Add(replyTimeout)
	for {
		var conns []*nativeConn
		served := 0
		for range 4 {
			c := s.dial()
			conns = append(conns, c)
			switch line, _ := c.do("PING"), 0; line {
			case wantPong + "\n":
				served++
			case wantBusy + "\n":
			default:
				t.Fatalf("PING after the four closed: %q", line)
			}
		}
		if served == 4 {
			// Nothing the refused connections sent was executed.
			conns[0].expect("QUERY refused COUNT 1", wantNotFound)
			break
		}
		for _, c := range conns {
			c.close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of 4 new connections served %v after the four closed", served, replyTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestHTTPMaxConns: with --http-max-conns 2 and two HTTP connections
// open, a third reads a 503 reply with a JSON error and is closed, whether
// or not it sent a request; once one of the two closes, new connections
// are served.
func TestHTTPMaxConns(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--http-max-conns", "2")
	get := func(nc net.Conn) (*http.Response, string, error) {
		nc.SetDeadline(time.Now().Add(replyTimeout))
		io.WriteString(nc, "GET /healthz HTTP/1.1\r\nHost: vigia\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}
	var held []net.Conn
	for range 2 {
		nc, err := net.DialTimeout("tcp", s.http, replyTimeout)
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if resp, body, err := get(nc); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /healthz on a held connection: %v %q %v", resp, body, err)
		}
		held = append(held, nc)
	}
	for _, withRequest := range []bool{false, true} {
		nc, err := net.DialTimeout("tcp", s.http, replyTimeout)
		if err != nil {
			t.Fatal(err)
		}
		var resp *http.Response
		var body string
		if withRequest {
			resp, body, err = get(nc)
		} else {
			nc.SetDeadline(time.Now().Add(replyTimeout))
			resp, err = http.ReadResponse(bufio.NewReader(nc), nil)
			if err == nil {
				var b []byte
				b, err = io.ReadAll(resp.Body)
				body = string(b)
			}
		}
		nc.Close()
		if err != nil {
			t.Fatalf("third connection (request sent: %v): %v", withRequest, err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Content-Type") != "application/json" ||
			body != `{"error":"The server is busy, try again later"}`+"\n" {
			t.Errorf("third connection (request sent: %v): %s %q %q", withRequest, resp.Status, resp.Header.Get("Content-Type"), body)
		}
	}
	for _, nc := range held {
		if resp, _, err := get(nc); err != nil || resp.StatusCode != 200 {
			t.Fatalf("held connection after the refusals: %v %v", resp, err)
		}
	}
	held[0].Close()
	// The server sees the close asynchronously: retry until a new
	// connection is served.
	deadline := time.Now().Add(replyTimeout)
	for {
		nc, err := net.DialTimeout("tcp", s.http, replyTimeout)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(nc, "GET /metrics HTTP/1.1\r\nHost: vigia\r\nConnection: close\r\n\r\n")
		nc.SetDeadline(time.Now().Add(replyTimeout))
		resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		nc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode == 200 {
			if v := metricValue(t, string(b), "vigia_http_refused_connections_total"); v < 2 {
				t.Errorf("vigia_http_refused_connections_total %v after 2 connections refused", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no connection served %v after one of the two closed: %s", replyTimeout, resp.Status)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestMaxInflight loads a server with --max-inflight 16 from eight
// connections pipelining LOGs at once: every reply is 201 or 503, a 503
// ends the connection, exactly the samples that got a 201 are stored, and
// /metrics counts every 503.
func TestMaxInflight(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--max-inflight", "16")
	const conns, perConn = 8, 3000
	busySeen, busyReplies := 0, 0
	var mu sync.Mutex
	deadline := time.Now().Add(60 * time.Second)
	for round := 0; busySeen == 0; round++ {
		acked := make([]int, conns)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for ci := range conns {
			nc, err := net.DialTimeout("tcp", s.native, replyTimeout)
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer nc.Close()
				<-start
				n, busy, err := inflightClient(nc, fmt.Sprintf("inflight.%d.%d", round, ci), perConn)
				if err != nil {
					t.Error(err)
				}
				acked[ci] = n
				mu.Lock()
				busyReplies += busy
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
		if t.Failed() {
			return
		}
		c := s.dial()
		for ci, n := range acked {
			id := fmt.Sprintf("inflight.%d.%d", round, ci)
			want := fmt.Sprintf("200 [%d]", n)
			if n == 0 {
				want = "200 []"
			}
			got := c.do("QUERY " + id + " COUNT 86400 " + fmt.Sprint(baseSec))
			if got != want+"\n" && !(n == 0 && got == wantNotFound+"\n") {
				t.Errorf("%s: %d samples got a 201, QUERY COUNT says %q", id, n, got)
			}
			if n < perConn {
				busySeen++
			}
		}
		c.close()
		t.Logf("round %d: 201s per connection %v", round, acked)
		if busySeen == 0 && time.Now().After(deadline) {
			t.Fatalf("no request refused with 503 under --max-inflight 16 in %d rounds", round+1)
		}
	}
	s.dial().expect("PING", wantPong)
	_, body := httpGet(t, "http://"+s.http+"/metrics")
	if v := metricValue(t, body, "vigia_native_busy_total"); v != float64(busyReplies) {
		t.Errorf("vigia_native_busy_total %v, but %d 503 replies were read", v, busyReplies)
	}
}

// inflightClient pipelines n LOGs of values 0 to n-1 on id and returns how
// many got a 201 and how many a 503. It fails on any reply other than 201 or 503, on a 201
// after a 503, and when the server does not close the connection after a
// 503.
func inflightClient(nc net.Conn, id string, n int) (acked, busy int, err error) {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "LOG %s %d %s\n", id, i, secs(int64(baseSec)*1000+int64(i)))
	}
	replies, err := pipeline(nc, b.String(), n, nil)
	for i, r := range replies {
		switch {
		case r == wantInserted+"\n" && busy == 0:
			acked++
		case r == wantBusy+"\n":
			busy++
		default:
			return acked, busy, fmt.Errorf("%s: reply %d is %q after %d 201s and %d 503s", id, i, r, acked, busy)
		}
	}
	switch {
	case busy > 0 && err == nil:
		// n replies with 503s among them: the close must follow.
		nc.SetReadDeadline(time.Now().Add(replyTimeout))
		if extra, err := io.ReadAll(nc); len(extra) > 0 || err != nil {
			return acked, busy, fmt.Errorf("%s: after the 503s read %q, %v; want the connection closed", id, extra, err)
		}
	case busy > 0 && err != io.EOF:
		return acked, busy, fmt.Errorf("%s: after %d 201s and %d 503s: %v, want the connection closed", id, acked, busy, err)
	case busy == 0 && len(replies) < n:
		return acked, busy, fmt.Errorf("%s: %d replies of %d, then %v", id, len(replies), n, err)
	}
	return acked, busy, nil
}

// TestIdleTimeout: with --idle-timeout 300ms the server closes a
// connection that sends nothing, used or not, and keeps serving.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--idle-timeout", "300ms")
	used := s.dial()
	used.expect("PING", wantPong)
	unused := s.dial()
	used.expectClosed("idle connection after a PING")
	unused.expectClosed("connection that never sent anything")
	s.dial().expect("PING", wantPong)
	_, body := httpGet(t, "http://"+s.http+"/metrics")
	if v := metricValue(t, body, "vigia_native_timeouts_total"); v < 2 {
		t.Errorf("vigia_native_timeouts_total %v after two idle connections were closed", v)
	}
}

// TestGarbageInput sends random bytes, invalid UTF-8, NULs, control
// characters and huge tokens: every line gets one reply, the server keeps
// running, and the data stored before is intact.
func TestGarbageInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--http-addr", "off")
	keep := s.dial()
	for i := range 10 {
		keep.expect(fmt.Sprintf("LOG keep.me %d.5 %d", i, baseSec+i), wantInserted)
	}
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 2))

	// Lines with a known reply.
	id255 := strings.Repeat("é", 127) + "x"
	known := []struct{ req, want string }{
		{"LOG a\x00b 1", wantLogUsage},
		{"LOG \xff\xfe 1", wantLogUsage},
		{"LOG \xc3\x28 1", wantLogUsage},
		{"LOG \xed\xa0\x80 1", wantLogUsage}, // a UTF-16 surrogate
		{"LOG a\u0085b 1", wantLogUsage},     // a C1 control character
		{"LOG a\x7fb 1", wantLogUsage},
		{"LOG a\x1bb 1", wantLogUsage},
		{"LOG " + strings.Repeat("x", 256) + " 1", wantLogUsage},
		{"LOG " + id255 + " 1", wantInserted},
		{"QUERY " + id255 + " COUNT 100000", "200 [1]"},
		{"QUERY \xc3\x28 COUNT 1", wantQueryUsage},
		{"QUERY a\x00 COUNT 1", wantQueryUsage},
		{"NEW-ALERT \xff MAX 1 1", wantNewAlertUsage},
		{"METRICS \x00", "400 Bad Request -- METRICS [prefix:str]"},
		{"LOG x 1 \x00", wantLogUsage},
		{"LOG x 1\x00", wantLogUsage},
		{"\x00", wantCommands},
		{"\xff\xfe\xfd", wantCommands},
		{"LOG\x00x 1", wantCommands},
		{"LOG x " + strings.Repeat("9", 400), wantLogUsage},
		{"QUERY x AVG " + strings.Repeat("9", 30), wantQueryUsage},
		{"QUERY x AVG 1 " + strings.Repeat("9", 30), wantQueryUsage},
		{"LOG x 1 99999999999999999999", wantLogUsage},
		{"LOG x 1 1e3", wantLogUsage},
		{"DELETE-ALERT " + strings.Repeat("9", 30), "400 Bad Request -- DELETE-ALERT <n:int>"},
	}
	c := s.dial()
	for _, k := range known {
		c.expect(k.req, k.want)
	}

	// Random lines: each gets exactly one well-formed reply line.
	var b strings.Builder
	lines := 0
	for range 2000 {
		n := rng.IntN(300)
		for range n {
			var ch byte
			switch rng.IntN(4) {
			case 0:
				ch = byte(rng.IntN(256))
			case 1:
				ch = " \t\r\x00\xff\xc3"[rng.IntN(6)]
			default:
				ch = "LOGQUERYNEW-ALERTPINGHELPMETRICS 0123456789.e-+"[rng.IntN(47)]
			}
			if ch == '\n' {
				ch = ' '
			}
			b.WriteByte(ch)
		}
		b.WriteByte('\n')
		lines++
	}
	c2 := s.dial()
	got, err := pipeline(c2.nc, b.String(), lines, nil)
	if err != nil {
		t.Fatalf("random lines: %d replies of %d, then %v", len(got), lines, err)
	}
	replyRE := regexp.MustCompile(`^(200|201|400|404) [^\r\n]*\n$`)
	for i, r := range got {
		if !replyRE.MatchString(r) {
			t.Errorf("random line %d: reply %q", i, r)
		}
	}
	c2.expect("PING", wantPong)

	// A flood of NULs with no newline: one 400, then the close.
	c3 := s.dial()
	got, err = pipeline(c3.nc, strings.Repeat("\x00", 1<<20), 2, nil)
	if len(got) != 1 || got[0] != wantCommands+"\n" || err != io.EOF {
		t.Errorf("1 MiB of NULs: replies %q then %v, want %q and the close", got, err, wantCommands+"\n")
	}

	s.alive()
	c.expect("PING", wantPong)
	c4 := s.dial()
	c4.expect("PING", wantPong)
	c4.expect("QUERY keep.me COUNT 100", "200 [10]")
	c4.expect("QUERY keep.me SUM 100", "200 [50.0]")
	c4.expect("QUERY keep.me LAST 1", "200 [0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5]")
}

// metricValue returns the value of an unlabelled metric in a Prometheus
// text exposition.
func metricValue(t testing.TB, exposition, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(exposition)
	if m == nil {
		t.Fatalf("/metrics has no %s:\n%s", name, exposition)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("/metrics: %s %q: %v", name, m[1], err)
	}
	return v
}

// TestHTTP checks /healthz, /metrics and GET /api/v1/query.
func TestHTTP(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	base := "http://" + s.http
	if code, body := httpGet(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz: %d %q", code, body)
	}
	c := s.dial()
	c.expect(fmt.Sprintf("LOG h.cpu 1 %d", baseSec), wantInserted)
	c.expect(fmt.Sprintf("LOG h.cpu 3 %d", baseSec+5), wantInserted)
	c.expect(fmt.Sprintf("LOG h.cpu 0.5 %d", baseSec+25), wantInserted)
	c.expect("QUERY h.cpu AVG 10", "200 [2.0, 0.5]")
	c.expect("FOO", wantCommands)

	code, body := httpGet(t, base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d %q", code, body)
	}
	if v := metricValue(t, body, "vigia_native_requests_total"); v < 5 {
		t.Errorf("vigia_native_requests_total %v after 5 requests", v)
	}
	for name, want := range map[string]float64{
		"vigia_tsdb_appended_samples_total": 3,
		"vigia_native_samples_total":        3,
		"vigia_native_bad_requests_total":   1,
		"vigia_native_connections":          1,
		"vigia_native_busy_total":           0,
	} {
		if v := metricValue(t, body, name); v != want {
			t.Errorf("%s %v after 3 LOGs, a QUERY and a FOO on one connection, want %v", name, v, want)
		}
	}
	if code, body := httpPost(t, base+"/api/v1/admin/flush"); code != 200 {
		t.Fatalf("flush: %d %q", code, body)
	}
	_, body = httpGet(t, base+"/metrics")
	if v := metricValue(t, body, "vigia_tsdb_flushes_total"); v != 1 {
		t.Errorf("vigia_tsdb_flushes_total %v after one flush", v)
	}
	if v := metricValue(t, body, "vigia_tsdb_flush_seconds_total"); v <= 0 {
		t.Errorf("vigia_tsdb_flush_seconds_total %v after a flush", v)
	}
	metricValue(t, body, "vigia_tsdb_merge_seconds_total")

	code, body = httpGet(t, base+"/api/v1/export?name=h.cpu")
	iso := func(sec int) string { return time.Unix(int64(baseSec+sec), 0).UTC().Format("2006-01-02T15:04:05.000Z") }
	if want := "time,value\n" + iso(0) + ",1.0\n" + iso(5) + ",3.0\n" + iso(25) + ",0.5\n"; code != 200 || body != want {
		t.Errorf("/api/v1/export: %d %q, want %q", code, body, want)
	}
	code, body = httpGet(t, base+"/api/v1/export?name=h.cpu&format=json&from="+fmt.Sprint(baseSec+1))
	if want := fmt.Sprintf("[[%d,3],[%d,0.5]]\n", int64(baseSec+5)*1000, int64(baseSec+25)*1000); code != 200 || body != want {
		t.Errorf("/api/v1/export JSON from +1 s: %d %q, want %q", code, body, want)
	}
	if code, body := httpGet(t, base+"/api/v1/metrics?prefix=h."); code != 200 || body != `["h.cpu"]`+"\n" {
		t.Errorf("/api/v1/metrics?prefix=h.: %d %q", code, body)
	}

	code, body = httpGet(t, fmt.Sprintf("%s/api/v1/query?name=h.cpu&op=AVG&secs=10&from=%d", base, baseSec))
	var res struct {
		Name   string `json:"name"`
		Op     string `json:"op"`
		Secs   int64  `json:"secs"`
		Points []struct {
			Start string  `json:"start"`
			Value float64 `json:"value"`
		} `json:"points"`
	}
	if code != 200 || json.Unmarshal([]byte(body), &res) != nil {
		t.Fatalf("/api/v1/query: %d %q", code, body)
	}
	if res.Name != "h.cpu" || res.Op != "AVG" || res.Secs != 10 || len(res.Points) != 2 ||
		res.Points[0].Value != 2 || res.Points[1].Value != 0.5 {
		t.Errorf("/api/v1/query: %s", body)
	}
	for i, want := range []time.Time{time.Unix(int64(baseSec), 0), time.Unix(int64(baseSec+20), 0)} {
		if i < len(res.Points) {
			if got, err := time.Parse(time.RFC3339, res.Points[i].Start); err != nil || !got.Equal(want) {
				t.Errorf("/api/v1/query: point %d starts %q, want %v", i, res.Points[i].Start, want.UTC())
			}
		}
	}
	code, body = httpGet(t, fmt.Sprintf("%s/api/v1/query?name=h.cpu&op=COUNT&secs=60&from=%sZ&to=%sZ", base, baseISO(0), baseISO(25)))
	if code != 200 || !strings.Contains(body, `"value":2}`) {
		t.Errorf("/api/v1/query COUNT with from and to: %d %s", code, body)
	}
	if code, body := httpGet(t, base+"/api/v1/query?name=nope&op=AVG&secs=10"); code != 404 {
		t.Errorf("/api/v1/query of an unknown metric: %d %s", code, body)
	}
	if code, body := httpGet(t, base+"/api/v1/query?name=h.cpu&op=NOPE&secs=10"); code != 400 {
		t.Errorf("/api/v1/query with a bad op: %d %s", code, body)
	}
	if code, body := httpGet(t, base+"/api/v1/query?name=h.cpu&op=AVG&secs=0"); code != 400 {
		t.Errorf("/api/v1/query with secs=0: %d %s", code, body)
	}
}

// TestSubscriberOutlivesIdleTimeout: a SUBSCRIBEd connection waits for
// the server by design, so --idle-timeout does not close it: it still
// receives the ALERT line of an alert that fires after an idle connection
// opened with it was closed.
func TestSubscriberOutlivesIdleTimeout(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--http-addr", "off", "--idle-timeout", "300ms", "--alert-interval", "100ms")
	// request sends req on a new connection and returns it once req was
	// answered with want. A busy machine may let the idle timeout pass
	// before req arrives: the server then closes the connection without
	// reading req, and req is sent again on another.
	request := func(req, want string) *nativeConn {
		t.Helper()
		for deadline := time.Now().Add(replyTimeout); ; {
			c := s.dial()
			c.nc.SetDeadline(time.Now().Add(replyTimeout))
			if _, err := io.WriteString(c.nc, req+"\n"); err == nil {
				if got, err := c.r.ReadString('\n'); err == nil {
					if got != want+"\n" {
						t.Fatalf("%s: got %q, want %q", req, got, want+"\n")
					}
					return c
				}
			}
			c.close()
			if time.Now().After(deadline) {
				t.Fatalf("%s: no reply on a fresh connection within %v", req, replyTimeout)
			}
		}
	}
	request(fmt.Sprintf("LOG sub.cpu 1 %d", baseSec), wantInserted).close()
	request("NEW-ALERT sub.cpu MAX 1 50", "200 Alert Registered").close()
	sub := request("SUBSCRIBE", "200 Subscribed")
	idle := s.dial()
	idle.expectClosed("idle connection")
	request("LOG sub.cpu 99", wantInserted).close()
	line, err := sub.readLine()
	if err != nil || !strings.HasPrefix(line, "ALERT {") {
		t.Fatalf("subscriber read %q, %v; want an ALERT line (--idle-timeout closed the SUBSCRIBEd connection?)", line, err)
	}
}

// TestClientNotReading: a client that pipelines megabytes of requests and
// never reads the replies holds up only itself; others are served, and
// the server's memory stays bounded.
func TestClientNotReading(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir())
	hog := s.dial()
	const hogBytes = 32 << 20
	written := make(chan int64, 1)
	go func() {
		// Ends with a write error when the test closes the connection.
		chunk := []byte(strings.Repeat("PING\n", 1<<14))
		var n int64
		for n < hogBytes {
			hog.nc.SetWriteDeadline(time.Now().Add(2 * replyTimeout))
			m, err := hog.nc.Write(chunk)
			n += int64(m)
			if err != nil {
				break
			}
		}
		written <- n
	}()
	c := s.dial()
	for i := range 200 {
		c.expect(fmt.Sprintf("LOG others %d %d", i, baseSec+i), wantInserted)
	}
	c.expect("QUERY others COUNT 100000", "200 [200]")
	_, body := httpGet(t, "http://"+s.http+"/metrics")
	if rss := metricValue(t, body, "process_resident_memory_bytes"); rss > 256<<20 {
		t.Errorf("server resident memory %.0f MiB with a client not reading its replies", rss/(1<<20))
	}
	hog.close()
	t.Logf("the client that does not read wrote %d bytes", <-written)
	s.alive()
	s.dial().expect("PING", wantPong)
}
