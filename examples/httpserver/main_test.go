package main

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigia-mon/vigia/client"
)

// ackServer accepts LOG lines on 127.0.0.1, acknowledges each one as vigia
// does, and returns what it got.
func ackServer(t *testing.T) (addr string, lines func() []string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var mu sync.Mutex
	var got []string
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				sc := bufio.NewScanner(conn)
				for sc.Scan() {
					mu.Lock()
					got = append(got, sc.Text())
					mu.Unlock()
					if _, err := conn.Write([]byte("201 Metric Inserted\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String(), func() []string {
		mu.Lock()
		defer mu.Unlock()
		return append([]string(nil), got...)
	}
}

func TestInstrumentedServer(t *testing.T) {
	addr, lines := ackServer(t)
	metrics, err := client.New(&client.Options{Addr: addr, Period: time.Hour, Prefix: "test."})
	if err != nil {
		t.Fatal(err)
	}
	web := httptest.NewServer(newHandler(metrics))
	defer web.Close()
	for _, path := range []string{"/", "/", "/fail"} {
		resp, err := http.Get(web.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := metrics.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, l := range lines() {
		f := strings.Fields(l) // LOG name value ts
		got[f[1]] = f[2]
	}
	for name, want := range map[string]string{
		"test.requests":        "3",
		"test.errors":          "1",
		"test.latency.count":   "3",
		"test.resp.bytes.max":  "16", // "something broke\n"
		"test.requests.active": "0",
	} {
		if got[name] != want {
			t.Errorf("%s = %q, want %q (all: %v)", name, got[name], want, got)
		}
	}
}
