package loadgen

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// TestBenchHTTPStall: a server whose HTTP API stops answering fails the
// run after Stall, as one whose native protocol does, instead of hanging
// it.
func TestBenchHTTPStall(t *testing.T) {
	// The native side answers every request at once.
	native := serveTCP(t, func(nc net.Conn) {
		sc := bufio.NewScanner(nc)
		for sc.Scan() {
			reply := "201 Metric Inserted\n"
			if sc.Text() == "PING" {
				reply = "200 PONG\n"
			}
			io.WriteString(nc, reply)
		}
	})
	// The HTTP side accepts connections and never answers.
	httpAddr := serveTCP(t, func(nc net.Conn) { io.Copy(io.Discard, nc) })
	done := make(chan error, 1)
	go func() {
		_, err := Bench(context.Background(), BenchOptions{
			Addr: native, HTTPAddr: httpAddr,
			Data: Dataset{Series: 2, Points: 2}, PacedDuration: -1, LongPoints: -1, Stall: time.Second,
		})
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "metrics") {
			t.Fatalf("Bench: %v, want an error reading the metrics", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Bench still waits for the HTTP API 10 s after it stopped answering, with a Stall of 1 s")
	}
}

// serveTCP listens on a loopback port until the test ends, runs handle on
// each connection in a goroutine of its own and closes the connection
// after, and returns the address.
func serveTCP(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				handle(nc)
			}()
		}
	}()
	return ln.Addr().String()
}
