package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// start opens a server on loopback ports in a temporary data dir and runs
// it until stop is called or the test ends. stop returns what Run did.
func start(t *testing.T, opts Options) (s *Server, stop func() error) {
	t.Helper()
	opts.DataDir = t.TempDir()
	opts.NativeAddr, opts.HTTPAddr = "127.0.0.1:0", "127.0.0.1:0"
	opts.Logger = slog.New(slog.DiscardHandler)
	s, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return s, stop
}

// TestMetricsLint: /metrics passes the checks promtool check metrics
// makes (HELP and TYPE for every family, counters named _total, base
// units).
func TestMetricsLint(t *testing.T) {
	s, _ := start(t, Options{})
	resp, err := http.Get("http://" + s.HTTPAddr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || err != nil {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	problems, err := promlint.New(strings.NewReader(string(body))).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
	for _, name := range []string{"vigia_tsdb_series", "vigia_native_requests_total", "vigia_http_connections", "vigia_alert_rules", "go_goroutines", "process_open_fds"} {
		if !strings.Contains(string(body), "\n# TYPE "+name+" ") {
			t.Errorf("/metrics has no TYPE line for %s", name)
		}
	}
}

// TestShutdownHTTPNotCutByNative: at shutdown the HTTP listener closes at
// once, and an HTTP request in flight gets its reply, however long native
// connections take to finish.
func TestShutdownHTTPNotCutByNative(t *testing.T) {
	// The native connection below holds the shutdown until this timeout
	// or until the test closes it, at the end; the timeout only bounds a
	// hang, and must not cut the HTTP request on a busy machine.
	s, stop := start(t, Options{ShutdownTimeout: 30 * time.Second})
	httpAddr := s.HTTPAddr().String()

	// A native client that sends queries and reads none of their replies
	// holds the native shutdown until the timeout.
	nc, err := net.Dial("tcp", s.NativeAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	// Write until the server stops reading: its replies fill the socket
	// buffers.
	line := []byte(strings.Repeat("QUERY nope COUNT 1\n", 1000))
	for {
		nc.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		if _, err := nc.Write(line); err != nil {
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatal(err)
			}
			break
		}
	}

	// An HTTP request in flight: its body has not all arrived.
	hc, err := net.Dial("tcp", httpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer hc.Close()
	body := `{"metric":"m","op":"MAX","secs":60,"limit":1}`
	// Shut down once the request is in flight: its handler reads the body,
	// which has not arrived. A request whose header the server has not
	// read yet when the shutdown begins is not in flight (net/http closes
	// its connection unanswered), so the test waits for the server's
	// "100 Continue", sent when the handler starts reading the body.
	fmt.Fprintf(hc, "POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\nExpect: 100-continue\r\n\r\n", len(body))
	hc.SetReadDeadline(time.Now().Add(30 * time.Second))
	hr := bufio.NewReader(hc)
	if resp, err := http.ReadResponse(hr, nil); err != nil || resp.StatusCode != http.StatusContinue {
		t.Fatalf("the request's handler did not start reading its body: %v %v", resp, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	for {
		c, err := net.Dial("tcp", httpAddr)
		if err != nil {
			break
		}
		c.Close()
		if time.Now().After(deadline) {
			t.Fatal("the HTTP listener still accepts 10 s after the shutdown began")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := io.WriteString(hc, body); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(hr, nil)
	if err != nil {
		t.Fatalf("the request in flight at shutdown got no reply: %v", err)
	}
	resp.Body.Close()
	nc.Close()
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

// TestHealthz: /healthz answers 200 while the server runs, and 503 once
// it is shutting down.
func TestHealthz(t *testing.T) {
	s, _ := start(t, Options{})
	resp, err := http.Get("http://" + s.HTTPAddr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("running: %d", resp.StatusCode)
	}
	// As Run sets it when it begins shutting down (its listener closes
	// right after, so the flag is set here to ask through it).
	s.stopping.Store(true)
	resp, err = http.Get("http://" + s.HTTPAddr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), "shutting down") {
		t.Fatalf("shutting down: %d %q, want 503 saying so", resp.StatusCode, body)
	}
	s.stopping.Store(false)
}
