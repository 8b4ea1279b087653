package main

// Helpers of the end-to-end tests: they build the vigia binary once, start
// it as a child process on port 0 of 127.0.0.1 with its own data dir, read
// the addresses it bound from its log, talk to it over real sockets and
// stop it by PID.

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Deadlines of the helpers. They only bound how long a broken server can
// hang a test; nothing asserts how fast it answers.
const (
	startTimeout = 30 * time.Second
	replyTimeout = 20 * time.Second
	exitTimeout  = 30 * time.Second
)

var e2e struct {
	dir string // temp dir holding the binary
	bin string
	err error
	// offArgs turn off every listener besides the native and HTTP ones
	// (their --*-addr flags, as "vigia server --help" lists them).
	offArgs []string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if e2e.dir != "" {
		os.RemoveAll(e2e.dir)
	}
	os.Exit(code)
}

var buildOnce sync.Once

// binary returns the path of the vigia binary, built once per test run
// from this package with "go build", or $VIGIA_BIN when set. The tests are
// skipped with -short.
func binary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the vigia binary")
	}
	buildOnce.Do(func() {
		if bin := os.Getenv("VIGIA_BIN"); bin != "" {
			e2e.bin = bin
		} else {
			e2e.dir, e2e.err = os.MkdirTemp("", "vigia-e2e")
			if e2e.err != nil {
				return
			}
			bin := filepath.Join(e2e.dir, "vigia")
			args := []string{"build", "-o", bin}
			if os.Getenv("VIGIA_E2E_RACE") != "" {
				// The server under the race detector too: slower, finds more.
				args = append(args, "-race")
			}
			out, err := exec.Command("go", append(args, ".")...).CombinedOutput()
			if err != nil {
				e2e.err = fmt.Errorf("go build ./cmd/vigia: %v\n%s", err, out)
				return
			}
			e2e.bin = bin
		}
		help, _ := exec.Command(e2e.bin, "server", "--help").CombinedOutput()
		seen := map[string]bool{"native-addr": true, "http-addr": true}
		for _, m := range addrFlagRE.FindAllStringSubmatch(string(help), -1) {
			if !seen[m[1]] {
				seen[m[1]] = true
				e2e.offArgs = append(e2e.offArgs, "--"+m[1], "off")
			}
		}
	})
	if e2e.err != nil {
		t.Fatal(e2e.err)
	}
	return e2e.bin
}

var addrFlagRE = regexp.MustCompile(`(?m)^\s+-{1,2}([a-z][a-z0-9-]*-addr)\b`)

// syncBuffer is a bytes.Buffer safe for one writer and many readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Len()
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// testServer is one vigia server process.
type testServer struct {
	t       testing.TB
	dataDir string
	args    []string
	cmd     *exec.Cmd
	out     *syncBuffer // stdout and stderr of every run
	runAt   int         // where the current run's output starts in out
	exited  chan struct{}
	waitErr error // cmd.Wait's result, set when exited is closed

	native string // native protocol address
	http   string // HTTP address, "" when off
}

// startServer starts "vigia server" on dataDir with the native and HTTP
// listeners on free 127.0.0.1 ports, and waits until both listen. args
// come after the defaults, so they override them ("--http-addr", "off").
// The server is SIGKILLed at the end of the test if still running, and its
// log shown if the test failed.
func startServer(t testing.TB, dataDir string, args ...string) *testServer {
	t.Helper()
	s := &testServer{t: t, dataDir: dataDir, args: args}
	s.start()
	t.Cleanup(func() {
		s.kill()
		if strings.Contains(s.out.String(), "WARNING: DATA RACE") {
			t.Errorf("data race in the server (built with VIGIA_E2E_RACE set)")
		}
		if t.Failed() {
			t.Logf("log of the server on %s:\n%s", s.dataDir, s.out)
		}
	})
	return s
}

// serverCommand returns the server's command line.
func serverCommand(t testing.TB, dataDir string, args ...string) *exec.Cmd {
	bin := binary(t)
	all := []string{"server", "--data-dir", dataDir,
		"--native-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}
	all = append(all, e2e.offArgs...)
	all = append(all, args...)
	return exec.Command(bin, all...)
}

var listeningRE = regexp.MustCompile(`msg="(native protocol|http) listening" addr=(\S+)`)

// start runs the process and waits for its listeners.
func (s *testServer) start() {
	s.t.Helper()
	if err := s.tryStart(); err != nil {
		s.t.Fatal(err)
	}
}

// tryStart runs the process and waits for its listeners. It returns an
// error, with the run's output, when the process exits first.
func (s *testServer) tryStart() error {
	s.t.Helper()
	s.cmd = serverCommand(s.t, s.dataDir, s.args...)
	if s.out == nil {
		s.out = &syncBuffer{}
	}
	s.runAt = s.out.Len()
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	httpOff := false
	for i := 0; i+1 < len(s.args); i++ {
		if s.args[i] == "--http-addr" {
			httpOff = s.args[i+1] == "off"
		}
	}
	s.native, s.http = "", ""
	deadline := time.Now().Add(startTimeout)
	for {
		for _, m := range listeningRE.FindAllStringSubmatch(s.log(), -1) {
			if m[1] == "http" {
				s.http = m[2]
			} else {
				s.native = m[2]
			}
		}
		if s.native != "" && (httpOff || s.http != "") {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("server exited at start: %v\n%s", s.waitErr, s.log())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			s.t.Fatalf("server did not listen within %v:\n%s", startTimeout, s.out)
		}
	}
}

// log returns the output of the current or last run.
func (s *testServer) log() string {
	return s.out.String()[s.runAt:]
}

// running reports whether the process is still running.
func (s *testServer) running() bool {
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// kill SIGKILLs the server by its PID and reaps it. It does nothing when
// the server has exited.
func (s *testServer) kill() {
	if s.cmd == nil || !s.running() {
		return
	}
	syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.exited
}

// terminate sends SIGTERM by PID and returns the exit code.
func (s *testServer) terminate() int {
	s.t.Helper()
	return s.signal(syscall.SIGTERM)
}

// signal sends sig by PID, waits for the exit and returns the exit code.
func (s *testServer) signal(sig syscall.Signal) int {
	s.t.Helper()
	if err := syscall.Kill(s.cmd.Process.Pid, sig); err != nil {
		s.t.Fatalf("%v %d: %v", sig, s.cmd.Process.Pid, err)
	}
	select {
	case <-s.exited:
	case <-time.After(exitTimeout):
		s.kill()
		s.t.Fatalf("server did not exit within %v of %v:\n%s", exitTimeout, sig, s.log())
	}
	return s.cmd.ProcessState.ExitCode()
}

// restart starts the server again on the same data dir (on new ports).
func (s *testServer) restart() {
	s.t.Helper()
	if s.running() {
		s.t.Fatal("restart of a running server")
	}
	s.start()
}

// alive fails the test if the server process has exited.
func (s *testServer) alive() {
	s.t.Helper()
	if !s.running() {
		s.t.Fatalf("server exited: %v\n%s", s.waitErr, s.out)
	}
}

// nativeConn is a native protocol connection.
type nativeConn struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func (s *testServer) dial() *nativeConn {
	s.t.Helper()
	return dialNative(s.t, s.native)
}

func dialNative(t testing.TB, addr string) *nativeConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, replyTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	return &nativeConn{t: t, nc: nc, r: bufio.NewReaderSize(nc, 1<<16)}
}

func (c *nativeConn) close() { c.nc.Close() }

// send writes raw bytes.
func (c *nativeConn) send(b string) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(replyTimeout))
	if _, err := io.WriteString(c.nc, b); err != nil {
		c.t.Fatalf("write %.80q: %v", b, err)
	}
}

// readLine reads one reply line with its "\n".
func (c *nativeConn) readLine() (string, error) {
	c.nc.SetReadDeadline(time.Now().Add(replyTimeout))
	return c.r.ReadString('\n')
}

// mustRead reads one reply line with its "\n".
func (c *nativeConn) mustRead(what string) string {
	c.t.Helper()
	line, err := c.readLine()
	if err != nil {
		c.t.Fatalf("%s: reading the reply: %v (got %q)", what, err, line)
	}
	return line
}

// do sends one request line (a "\n" is added) and returns the reply line
// with its "\n".
func (c *nativeConn) do(req string) string {
	c.t.Helper()
	c.send(req + "\n")
	return c.mustRead(fmt.Sprintf("%.80q", req))
}

// expect sends req and checks that the reply is want followed by "\n",
// byte for byte.
func (c *nativeConn) expect(req, want string) {
	c.t.Helper()
	if got := c.do(req); got != want+"\n" {
		c.t.Errorf("%.100q:\n got %q\nwant %q", req, got, want+"\n")
	}
}

// expectClosed reads until the server closes the connection and fails if
// it sends anything more, resets the connection or does not close it
// within the deadline.
func (c *nativeConn) expectClosed(what string) {
	c.t.Helper()
	c.nc.SetReadDeadline(time.Now().Add(replyTimeout))
	rest, err := io.ReadAll(c.r)
	if len(rest) > 0 {
		c.t.Errorf("%s: got %q before the close, want nothing", what, rest)
	}
	if err != nil {
		c.t.Errorf("%s: %v, want the server to close the connection", what, err)
	}
}

// replyValues parses a "200 [v1, v2]\n" reply.
func replyValues(t testing.TB, reply string) []float64 {
	t.Helper()
	body, ok := strings.CutPrefix(reply, "200 [")
	if !ok || !strings.HasSuffix(body, "]\n") {
		t.Fatalf("reply %q, want 200 [...]", reply)
	}
	body = strings.TrimSuffix(body, "]\n")
	vs := []float64{}
	if body == "" {
		return vs
	}
	for _, f := range strings.Split(body, ", ") {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			t.Fatalf("reply %q: %v", reply, err)
		}
		vs = append(vs, v)
	}
	return vs
}

// httpGet returns the status and body of GET url.
func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: replyTimeout}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// httpPost returns the status and body of POST url with no body.
func httpPost(t testing.TB, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: replyTimeout}
	resp, err := c.Post(url, "text/plain", nil)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	return resp.StatusCode, string(b)
}

// The fixed replies of the protocol (DESIGN.md), without their "\n".
const (
	wantInserted = "201 Metric Inserted"
	wantPong     = "200 PONG"
	wantBusy     = "503 The server is busy, try again later"
	wantNotFound = "404 Metric Not Found"

	wantCommands = "400 Bad Request -- Available commands: ['LOG', 'QUERY', 'NEW-ALERT', " +
		"'HELP', 'PING', 'ALERTS', 'DELETE-ALERT', 'SUBSCRIBE', 'METRICS']"
	wantLogUsage      = "400 Bad Request -- LOG <id:str> <value:float>"
	wantQueryUsage    = "400 Bad Request -- QUERY <id:str> <op:AVG|MAX|MIN|COUNT> <secs:int> [from:iso_date] [to:iso_date]"
	wantNewAlertUsage = "400 Bad Request -- NEW-ALERT <id:str> <op:AVG|MAX|MIN|COUNT> <secs:int> <limit:float>"
)

// baseSec is midnight UTC two days ago, in unix seconds: the base of the
// timestamps the tests log. Samples this recent stay raw for the default
// --retention (10 days); older ones would be folded into the archives at
// the next retention pass.
var baseSec = int(time.Now().UTC().Truncate(24*time.Hour).Unix()) - 2*86400

// baseISO returns baseSec plus sec seconds as an ISO 8601 UTC date
// without a zone, such as "2022-04-26T00:00:00".
func baseISO(sec int) string {
	return time.Unix(int64(baseSec+sec), 0).UTC().Format("2006-01-02T15:04:05")
}

// waitFor polls cond every 50 ms until it holds, and fails the test when
// it does not within d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
