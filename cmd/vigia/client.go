package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"
)

func runClient(args []string) int {
	fs := newFlagSet("client", "client [flags] [COMMAND ARGS...]\n\nWith a command (vigia client LOG cpu 0.5), sends it, prints the reply and\nexits 0 on a 2xx reply, 1 otherwise. Without one, reads commands from\nstandard input, one per line, and prints each reply (and pushed ALERT lines\nafter SUBSCRIBE) until end of input; it exits 1 when the server closed the\nconnection before that (busy, a line over 64 KiB, an idle timeout), 0\notherwise.")
	addr := fs.String("addr", "127.0.0.1:7574", "server's native protocol address")
	timeout := fs.Duration("timeout", 10*time.Second, "connect timeout, and with a command the reply timeout")
	if rc := parseFlags(fs, args); rc >= 0 {
		return rc
	}
	if *timeout <= 0 {
		fmt.Fprintf(os.Stderr, "vigia client: --timeout %v: must be positive (see vigia client --help)\n", *timeout)
		return 2
	}
	conn, err := net.DialTimeout("tcp", *addr, *timeout)
	if err != nil {
		fmt.Fprintf(os.Stderr, "vigia client: cannot reach the server at %s: %v (is vigia server running? set --addr)\n", *addr, err)
		return 1
	}
	defer conn.Close()
	if fs.NArg() > 0 {
		return oneShot(conn, strings.Join(fs.Args(), " "), *timeout)
	}
	return interactive(conn, os.Stdin, os.Stdout)
}

// oneShot sends one request and prints its reply.
func oneShot(conn net.Conn, req string, timeout time.Duration) int {
	conn.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(conn, req+"\n"); err != nil {
		fmt.Fprintf(os.Stderr, "vigia client: send: %v\n", err)
		return 1
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		fmt.Fprintf(os.Stderr, "vigia client: no reply: %v\n", err)
		return 1
	}
	fmt.Print(reply)
	if strings.HasPrefix(reply, "2") {
		return 0
	}
	return 1
}

// interactive copies lines from in to the server and everything the server
// sends to out, until in ends and every request was answered, or the
// server closes the connection (then at once, even while waiting for
// input). It returns 1 when the server was busy (503), when a request went
// unanswered or the server closed the connection before the input ended
// (a line over 64 KiB, an idle timeout, a shutdown), or when a line of
// input was too long to send.
func interactive(conn net.Conn, in io.Reader, out io.Writer) int {
	type result struct {
		replies int
		busy    bool
		err     error
	}
	done := make(chan result, 1)
	go func() {
		replies, busy, err := copyReplies(out, conn)
		done <- result{replies, busy, err}
	}()
	var sent atomic.Int64
	var inErr error                   // set before inputEnded is closed
	inputEnded := make(chan struct{}) // standard input ended (not closed if a write failed)
	go func() {
		sc := bufio.NewScanner(in)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if _, err := fmt.Fprintf(conn, "%s\n", sc.Text()); err != nil {
				return // the server closed the connection
			}
			sent.Add(1)
		}
		// The server answers what was sent before a line too long to
		// read; the rest of the input is not sent, and the exit status
		// says so.
		inErr = sc.Err()
		close(inputEnded)
		if tc, ok := conn.(*net.TCPConn); ok {
			tc.CloseWrite()
		}
	}()
	r := <-done // the server closed the connection: after our input, or first
	ended := false
	select {
	case <-inputEnded:
		ended = true
	default:
	}
	n := int(sent.Load())
	switch {
	case r.err != nil:
		fmt.Fprintf(os.Stderr, "vigia client: %v\n", r.err)
		return 1
	case r.busy:
		// The server was busy and closed the connection, whatever else
		// the input held.
		fmt.Fprintf(os.Stderr, "vigia client: the server was busy (503) and closed the connection after answering %d of the %d requests sent; the refused ones and any after them were not executed\n", r.replies, n)
		return 1
	case ended && inErr != nil:
		fmt.Fprintf(os.Stderr, "vigia client: reading standard input: %v (requests are at most 64 KiB); stopped there\n", inErr)
		return 1
	case r.replies < n:
		fmt.Fprintf(os.Stderr, "vigia client: the server closed the connection after answering %d of the %d requests sent; the rest were not executed\n", r.replies, n)
		return 1
	case !ended:
		// Every request sent was answered, but the server closed the
		// connection while standard input was still open (a line it
		// refused, an idle timeout, a shutdown).
		fmt.Fprintf(os.Stderr, "vigia client: the server closed the connection after answering %d of the %d requests sent; the rest of the input was not sent\n", r.replies, n)
		return 1
	}
	return 0
}

// copyReplies copies the server's lines to out until the connection ends,
// counts the replies among them (pushed ALERT lines are not replies), and
// reports whether one was the busy line (503), after which the server
// closes the connection.
func copyReplies(out io.Writer, conn net.Conn) (replies int, busy bool, err error) {
	br := bufio.NewReader(conn)
	first := true // the next chunk starts a line
	for {
		chunk, err := br.ReadSlice('\n') // a long line comes in several chunks
		if first && len(chunk) > 0 && !bytes.HasPrefix(chunk, []byte("ALERT ")) {
			replies++
			busy = busy || bytes.HasPrefix(chunk, []byte("503 "))
		}
		if len(chunk) > 0 {
			if _, werr := out.Write(chunk); werr != nil {
				return replies, busy, werr
			}
		}
		first = err == nil
		switch {
		case err == nil || err == bufio.ErrBufferFull:
		case err == io.EOF:
			return replies, busy, nil
		default:
			return replies, busy, err
		}
	}
}
