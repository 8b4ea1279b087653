package native

import (
	"bufio"
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

// pipeListener hands the server the far ends of net.Pipe connections:
// with no socket buffers, a reply the client does not read keeps the
// server's writer waiting in Write, deterministically.
type pipeListener struct {
	conns chan net.Conn
	done  chan struct{}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	return nil
}

func (l *pipeListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func (l *pipeListener) dial(t *testing.T) (net.Conn, *bufio.Reader) {
	client, server := net.Pipe()
	l.conns <- server
	t.Cleanup(func() { client.Close() })
	client.SetDeadline(time.Now().Add(30 * time.Second))
	return client, bufio.NewReader(client)
}

// TestQueryBudget: a big QUERY reply that its client has not read yet
// holds its share of the query budget; another connection's big QUERY is
// refused with 503 meanwhile, while small ones are answered and the
// connection goes on; once the reply is read, the budget is whole again.
func TestQueryBudget(t *testing.T) {
	db, err := tsdb.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ref, err := db.GetOrCreate([]byte("big"), nil)
	if err != nil {
		t.Fatal(err)
	}
	const n = 100_000
	samples := make([]tsdb.Sample, n)
	for i := range samples {
		samples[i] = tsdb.Sample{Ref: ref, T: 1_700_000_000_000 + int64(i)*1000, V: float64(i) + 0.25}
	}
	if err := db.Append(samples); err != nil {
		t.Fatal(err)
	}

	const size = 5 << 20
	budget := query.NewBudget(size)
	srv := New(Options{Store: db, Writer: &countingWriter{db: db}, QueryBudget: budget})
	l := &pipeListener{conns: make(chan net.Conn), done: make(chan struct{})}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()
	defer func() {
		srv.Shutdown(context.Background())
		<-served
	}()
	waitFree := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for budget.Free() != want {
			if time.Now().After(deadline) {
				t.Fatalf("budget has %d bytes free, want %d", budget.Free(), want)
			}
			time.Sleep(time.Millisecond)
		}
	}

	a, ar := l.dial(t)
	if _, err := io.WriteString(a, "QUERY big MAX 1\n"); err != nil {
		t.Fatal(err)
	}
	// Its windows are let go once the reply is built; the reply is held
	// until it is sent, which waits for a to read it.
	waitFree(size - query.ReplyBytes(n))

	b, br := l.dial(t)
	do := func(req string) string {
		t.Helper()
		if _, err := io.WriteString(b, req+"\n"); err != nil {
			t.Fatal(err)
		}
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("%s: %v", req, err)
		}
		return strings.TrimSuffix(line, "\n")
	}
	if got := do("QUERY big MAX 1"); got != "503 The server is busy, try again later" {
		t.Fatalf("big QUERY while another's reply is held: %.60q", got)
	}
	if got := do("QUERY big COUNT 20000"); got != "200 [20000, 20000, 20000, 20000, 20000]" {
		t.Fatalf("small QUERY after the 503: %.60q", got)
	}
	if n := budget.Refused(); n != 1 {
		t.Errorf("budget refused %d queries, want 1", n)
	}

	reply, err := ar.ReadString('\n')
	if err != nil || !strings.HasPrefix(reply, "200 [0.25, 1.25, ") || strings.Count(reply, ",") != n-1 {
		t.Fatalf("the held reply: %.60q (%d bytes), %v", reply, len(reply), err)
	}
	waitFree(size)
	if got := do("QUERY big MAX 1"); !strings.HasPrefix(got, "200 [0.25, 1.25, ") {
		t.Fatalf("big QUERY once the budget is free: %.60q", got)
	}
	waitFree(size)
}
