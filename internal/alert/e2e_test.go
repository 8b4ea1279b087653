package alert_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// interval is the server's --alert-interval in this test.
const interval = 200 * time.Millisecond

// TestAlertSurvivesKill starts the real binary, registers an alert over the
// native protocol, SIGKILLs the server, restarts it on the same data
// directory, and checks that the alert is still listed and still fires: a
// SUBSCRIBEd connection receives "ALERT {json}" within about one interval
// of a breaching LOG.
func TestAlertSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the server binary")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "vigia")
	build := exec.Command("go", "build", "-o", bin, "./cmd/vigia")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	data := filepath.Join(dir, "data")
	nativeAddr, httpAddr := freeAddr(t), freeAddr(t)

	srv := startServer(t, bin, data, nativeAddr, httpAddr)
	c := dialNative(t, nativeAddr)
	c.expect(t, "LOG e2e.cpu 10", "201 Metric Inserted")
	c.expect(t, "NEW-ALERT e2e.cpu MAX 1 50", "200 Alert Registered")
	if got := c.request(t, "ALERTS"); !strings.HasPrefix(got, "200 [") || !strings.Contains(got, `"metric":"e2e.cpu"`) {
		t.Fatalf("ALERTS before the kill: %q", got)
	}
	c.conn.Close()
	srv.kill(t)

	srv = startServer(t, bin, data, nativeAddr, httpAddr)
	defer srv.kill(t)
	c = dialNative(t, nativeAddr)
	defer c.conn.Close()
	list := c.request(t, "ALERTS")
	var alerts []struct {
		ID     int64   `json:"id"`
		Metric string  `json:"metric"`
		Op     string  `json:"op"`
		Secs   int64   `json:"secs"`
		Limit  float64 `json:"limit"`
	}
	if !strings.HasPrefix(list, "200 ") || json.Unmarshal([]byte(list[4:]), &alerts) != nil || len(alerts) != 1 ||
		alerts[0].Metric != "e2e.cpu" || alerts[0].Op != "MAX" || alerts[0].Secs != 1 || alerts[0].Limit != 50 {
		t.Fatalf("ALERTS after restart: %q", list)
	}

	sub := dialNative(t, nativeAddr)
	defer sub.conn.Close()
	sub.expect(t, "SUBSCRIBE", "200 Subscribed")
	sent := time.Now()
	c.expect(t, "LOG e2e.cpu 99", "201 Metric Inserted")
	logged := time.Now()
	// The check after the LOG runs at most one interval later; the
	// latency is logged. The deadline is generous because a pass must not
	// depend on how loaded the machine is (a 2-core CI machine running
	// the race detector and other packages' tests at once).
	sub.conn.SetReadDeadline(time.Now().Add(interval + 10*time.Second))
	line, err := sub.r.ReadString('\n')
	if err != nil {
		t.Fatalf("no ALERT line within %v of the breaching LOG: %v (server log:\n%s)", interval+10*time.Second, err, srv.log())
	}
	t.Logf("ALERT received %v after the breaching LOG", time.Since(logged))
	js, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "ALERT ")
	if !ok {
		t.Fatalf("subscriber got %q, want ALERT {json}", line)
	}
	var ev struct {
		ID          int64   `json:"id"`
		Metric      string  `json:"metric"`
		Op          string  `json:"op"`
		Secs        int64   `json:"secs"`
		Limit       float64 `json:"limit"`
		Value       float64 `json:"value"`
		State       string  `json:"state"`
		WindowStart string  `json:"window_start"`
	}
	if err := json.Unmarshal([]byte(js), &ev); err != nil {
		t.Fatalf("ALERT json %q: %v", js, err)
	}
	ws, err := time.Parse(time.RFC3339, ev.WindowStart)
	if ev.ID != alerts[0].ID || ev.Metric != "e2e.cpu" || ev.Op != "MAX" || ev.Secs != 1 || ev.Limit != 50 ||
		ev.Value != 99 || ev.State != "firing" || err != nil || ws.Before(sent.Truncate(time.Second)) || ws.After(logged) {
		// The window is the second holding the sample, stamped by the
		// server between the LOG's send and its reply.
		t.Fatalf("ALERT event %+v (window start %v, parse error %v), want the window of a sample logged between %v and %v",
			ev, ws, err, sent, logged)
	}
}

type server struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func (s *server) log() string { return s.stderr.String() }

// kill SIGKILLs the server by its PID and reaps it.
func (s *server) kill(t *testing.T) {
	t.Helper()
	if s.cmd.ProcessState != nil {
		return
	}
	if err := syscall.Kill(s.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Errorf("kill %d: %v", s.cmd.Process.Pid, err)
	}
	s.cmd.Wait()
}

func startServer(t *testing.T, bin, data, nativeAddr, httpAddr string) *server {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "server", "--data-dir", data, "--native-addr", nativeAddr,
		"--http-addr", httpAddr, "--alert-interval", interval.String())
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &server{cmd: cmd, stderr: &stderr}
	t.Cleanup(func() { s.kill(t) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", nativeAddr, time.Second)
		if err == nil {
			c.Close()
			return s
		}
		if time.Now().After(deadline) {
			s.kill(t)
			t.Fatalf("server did not listen on %s: %v\n%s", nativeAddr, err, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago (the server takes flags, not a listener).
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type nativeConn struct {
	conn net.Conn
	r    *bufio.Reader
}

func dialNative(t *testing.T, addr string) *nativeConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return &nativeConn{conn: c, r: bufio.NewReader(c)}
}

func (c *nativeConn) request(t *testing.T, line string) string {
	t.Helper()
	c.conn.SetDeadline(time.Now().Add(20 * time.Second)) // bounds a hang only
	if _, err := c.conn.Write([]byte(line + "\n")); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	resp, err := c.r.ReadString('\n')
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	return strings.TrimRight(resp, "\r\n")
}

func (c *nativeConn) expect(t *testing.T, line, want string) {
	t.Helper()
	if got := c.request(t, line); got != want {
		t.Fatalf("%s: got %q, want %q", line, got, want)
	}
}
