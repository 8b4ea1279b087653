package client

import (
	"bufio"
	"fmt"
	"net"
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

// The tests in this file run the real vigia server binary: built once
// from ../cmd/vigia into a temporary directory, or taken from $VIGIA_BIN.
// They are skipped with -short, and when the binary cannot be built.

var vigiaBuild struct {
	once sync.Once
	dir  string
	bin  string
	err  error
	// extraArgs are added to every "vigia server" command line.
	extraArgs []string
	extraOnce sync.Once
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(storeServerEnv); dir != "" {
		runStoreServer(dir, os.Getenv(storeAddrEnv))
		return
	}
	code := m.Run()
	if vigiaBuild.dir != "" {
		os.RemoveAll(vigiaBuild.dir)
	}
	os.Exit(code)
}

// vigiaBinary returns the path of the vigia binary, building it on first
// use.
func vigiaBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("runs the vigia server binary")
	}
	vigiaBuild.once.Do(func() {
		if bin := os.Getenv("VIGIA_BIN"); bin != "" {
			vigiaBuild.bin = bin
			return
		}
		vigiaBuild.dir, vigiaBuild.err = os.MkdirTemp("", "vigia-client-test")
		if vigiaBuild.err != nil {
			return
		}
		bin := filepath.Join(vigiaBuild.dir, "vigia")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/vigia-mon/vigia/cmd/vigia").CombinedOutput()
		if err != nil {
			vigiaBuild.err = fmt.Errorf("go build ./cmd/vigia: %v\n%s", err, out)
			return
		}
		vigiaBuild.bin = bin
	})
	if vigiaBuild.err != nil {
		t.Skipf("no vigia binary: %v", vigiaBuild.err)
	}
	vigiaBuild.extraOnce.Do(func() { vigiaBuild.extraArgs = vigiaExtraArgs(vigiaBuild.bin) })
	return vigiaBuild.bin
}

// vigiaServer is a vigia server process on 127.0.0.1.
type vigiaServer struct {
	t       testing.TB
	bin     string
	dataDir string
	addr    string
	log     string
	cmd     *exec.Cmd
	exited  chan error // receives cmd.Wait's result
	command func() *exec.Cmd
}

func freePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startVigia starts a server on a fresh data dir and port and stops it at
// the end of the test.
func startVigia(t testing.TB) *vigiaServer {
	t.Helper()
	bin := vigiaBinary(t)
	s := &vigiaServer{t: t, bin: bin, dataDir: t.TempDir(), addr: freePort(t)}
	s.log = filepath.Join(t.TempDir(), "server.log")
	s.command = func() *exec.Cmd {
		cmd := exec.Command(bin, "server", "--data-dir", s.dataDir, "--native-addr", s.addr, "--http-addr", "off")
		cmd.Args = append(cmd.Args, vigiaBuild.extraArgs...)
		return cmd
	}
	s.start()
	t.Cleanup(s.stop)
	return s
}

// stop ends the server with SIGTERM (SIGKILL after 10 s) and shows its log
// if the test failed.
func (s *vigiaServer) stop() {
	if s.cmd != nil {
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(10 * time.Second):
			s.cmd.Process.Kill()
			<-s.exited
		}
		s.cmd = nil
	}
	if s.t.Failed() {
		if b, err := os.ReadFile(s.log); err == nil {
			s.t.Logf("server log:\n%s", b)
		}
	}
}

// start runs the server and waits until it answers.
func (s *vigiaServer) start() {
	s.t.Helper()
	logf, err := os.OpenFile(s.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.t.Fatal(err)
	}
	defer logf.Close()
	cmd := s.command()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.cmd = cmd
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			conn.Close()
			s.exited = exited
			return
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(s.log)
			s.t.Fatalf("server exited: %v\n%s", err, b)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			s.t.Fatalf("server not answering on %s after 30s", s.addr)
		}
	}
}

// kill stops the server with SIGKILL.
func (s *vigiaServer) kill() {
	s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// vigiaExtraArgs turns off the server's other listeners (every --*-addr
// flag its help lists besides --native-addr and --http-addr), which would
// otherwise take fixed default ports. $VIGIA_TEST_ARGS replaces them.
func vigiaExtraArgs(bin string) []string {
	if a, ok := os.LookupEnv("VIGIA_TEST_ARGS"); ok {
		return strings.Fields(a)
	}
	help, _ := exec.Command(bin, "server", "--help").CombinedOutput()
	var args []string
	seen := map[string]bool{"native-addr": true, "http-addr": true}
	for _, m := range addrFlag.FindAllStringSubmatch(string(help), -1) {
		if !seen[m[1]] {
			seen[m[1]] = true
			args = append(args, "--"+m[1], "off")
		}
	}
	return args
}

var addrFlag = regexp.MustCompile(`-{1,2}([a-z][a-z0-9-]*-addr)\b`)

// query sends one native request to the server and returns the values of
// its "200 [...]" reply.
func (s *vigiaServer) query(req string) ([]float64, error) {
	conn, err := net.DialTimeout("tcp", s.addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "%s\n", req); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return nil, err
	}
	line = strings.TrimSpace(line)
	body, ok := strings.CutPrefix(line, "200 [")
	if !ok || !strings.HasSuffix(body, "]") {
		return nil, fmt.Errorf("%s: reply %q", req, line)
	}
	body = strings.TrimSuffix(body, "]")
	var vals []float64
	if body == "" {
		return vals, nil
	}
	for _, f := range strings.Split(body, ",") {
		v, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil {
			return nil, fmt.Errorf("%s: reply %q: %v", req, line, err)
		}
		vals = append(vals, v)
	}
	return vals, nil
}

// TestOutageVigia is the at-least-once test for real: the vigia server is
// killed with SIGKILL and restarted on the same data dir and port while a
// faulty proxy cuts connections and delays acknowledgements. Afterwards
// every point the client produced is stored, and no more points are stored
// twice than requests were left unanswered.
func TestOutageVigia(t *testing.T) {
	srv := startVigia(t)
	r := runOutage(t, outageBackend{addr: srv.addr, kill: srv.kill, restart: srv.start}, 10)
	checkStoredBy(t, r, srv)
}

// checkStoredBy checks r against what srv answers to QUERY COUNT and SUM
// over 1-second windows spanning every point produced.
func checkStoredBy(t *testing.T, r outageResult, srv *vigiaServer) {
	t.Helper()
	var from, to int64 = 1 << 62, 0
	for _, byTS := range r.produced {
		for ts := range byTS {
			from, to = min(from, ts/1000), max(to, ts/1000+1)
		}
	}
	checkStored(t, r, func(name string) (counts, sums []float64) {
		var err error
		counts, err = srv.query(fmt.Sprintf("QUERY %s COUNT 1 %d %d", name, from, to))
		if err != nil {
			t.Fatal(err)
		}
		sums, err = srv.query(fmt.Sprintf("QUERY %s SUM 1 %d %d", name, from, to))
		if err != nil {
			t.Fatal(err)
		}
		return counts, sums
	})
}

func BenchmarkFlush10kVigia(b *testing.B) {
	srv := startVigia(b)
	benchFlush(b, srv.addr, 10_000)
}

func TestVigiaExtraArgs(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "vigia")
	script := "#!/bin/sh\necho '  --native-addr string'\necho '  -graphite-addr string (default 127.0.0.1:2003)'\n" +
		"echo '  --http-addr string'\necho '  --syslog-addr string'\necho '  --graphite-addr again'\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("VIGIA_TEST_ARGS", "")
	os.Unsetenv("VIGIA_TEST_ARGS")
	got := strings.Join(vigiaExtraArgs(bin), " ")
	if want := "--graphite-addr off --syslog-addr off"; got != want {
		t.Errorf("extra args %q, want %q", got, want)
	}
}
