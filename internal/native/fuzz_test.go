package native

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"regexp"
	"testing"
	"time"
)

var replyLine = regexp.MustCompile(`^(201 Metric Inserted|200 .*|400 Bad Request -- .*|404 (Metric|Alert) Not Found|503 .*|ALERT \{.*\})\n$`)

// FuzzConn sends arbitrary bytes over a real connection and checks that
// every reply is a well-formed reply line, that there is at most one per
// request line, and that the server keeps serving.
func FuzzConn(f *testing.F) {
	for _, s := range []string{
		"LOG a 1\nQUERY a COUNT 1\n",
		"LOG a 1 2022-04-26T00:00:00\r\nLOG a 2\tx\nQUERY a AVG 60 2022-04-26\n",
		"FOO\n\n\nPING\nHELP\nMETRICS\nALERTS\nSUBSCRIBE\n",
		"LOG \xff\x00 1\nQUERY a MAX 0\nLOG a nan\n",
		"NEW-ALERT a MAX 1 1\nDELETE-ALERT 1\n",
		"PING",
	} {
		f.Add([]byte(s))
	}
	ts := startServer(f, Options{Alerts: &fakeAlerts{events: make(chan [][]byte)}})
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			c.Write(in)
			c.(*net.TCPConn).CloseWrite()
		}()
		r := bufio.NewReader(c)
		replies := 0
		for {
			l, err := r.ReadString('\n')
			if err == io.EOF && l == "" {
				break
			}
			if err != nil {
				t.Fatalf("read: %v after %d replies (partial %q)", err, replies, l)
			}
			if !replyLine.MatchString(l) {
				t.Fatalf("malformed reply %q", l)
			}
			replies++
		}
		if lines := bytes.Count(in, []byte{'\n'}) + 1; replies > lines {
			t.Fatalf("%d replies to %d lines", replies, lines)
		}
		p, err := net.Dial("tcp", ts.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		p.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(p, "PING\n")
		if l, err := bufio.NewReader(p).ReadString('\n'); l != "200 PONG\n" {
			t.Fatalf("server no longer answers: %q %v", l, err)
		}
	})
}
