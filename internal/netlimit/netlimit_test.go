package netlimit

import (
	"io"
	"net"
	"testing"
	"time"
)

// TestListener: Accept returns at most max connections open at once,
// refuses the others with the reply, and counts a connection closed twice
// once.
func TestListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := NewListener(ln, 1, []byte("busy\n"))
	defer l.Close()
	accepted := make(chan net.Conn)
	go func() {
		for {
			nc, err := l.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- nc
		}
	}()
	dial := func() net.Conn {
		nc, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		return nc
	}
	dial()
	first := <-accepted
	for range 2 {
		nc := dial()
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if got, err := io.ReadAll(nc); string(got) != "busy\n" || err != nil {
			t.Fatalf("connection beyond the limit read %q (%v), want the reply and EOF", got, err)
		}
	}
	if l.Open() != 1 || l.Refused() != 2 {
		t.Errorf("open %d, refused %d; want 1 and 2", l.Open(), l.Refused())
	}
	first.Close()
	first.Close()
	if l.Open() != 0 {
		t.Errorf("open %d after the connection closed twice, want 0", l.Open())
	}
	dial()
	select {
	case <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("no connection accepted after the first closed")
	}
}
