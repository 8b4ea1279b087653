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
	nl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer nl.Close()
	go func() {
		for {
			nc, err := nl.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				sc := bufio.NewScanner(nc)
				for sc.Scan() {
					reply := "201 Metric Inserted\n"
					if sc.Text() == "PING" {
						reply = "200 PONG\n"
					}
					io.WriteString(nc, reply)
				}
			}()
		}
	}()
	// The HTTP side accepts connections and never answers.
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	go func() {
		for {
			nc, err := hl.Accept()
			if err != nil {
				return
			}
			defer nc.Close()
			go io.Copy(io.Discard, nc)
		}
	}()
	done := make(chan error, 1)
	go func() {
		_, err := Bench(context.Background(), BenchOptions{
			Addr: nl.Addr().String(), HTTPAddr: hl.Addr().String(),
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
