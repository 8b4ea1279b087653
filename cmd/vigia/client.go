package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

func runClient(args []string) int {
	fs := newFlagSet("client", "client [flags] [COMMAND ARGS...]\n\nWith a command (vigia client LOG cpu 0.5), sends it, prints the reply and\nexits 0 on a 2xx reply, 1 otherwise. Without one, reads commands from\nstandard input, one per line, and prints each reply (and pushed ALERT lines\nafter SUBSCRIBE) until end of input.")
	addr := fs.String("addr", "127.0.0.1:7574", "server's native protocol address")
	timeout := fs.Duration("timeout", 10*time.Second, "connect and reply timeout (one-shot mode)")
	if rc := parseFlags(fs, args); rc >= 0 {
		return rc
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
// server closes the connection.
func interactive(conn net.Conn, in io.Reader, out io.Writer) int {
	done := make(chan error, 1)
	go func() {
		_, err := io.Copy(out, conn)
		done <- err
	}()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if _, err := fmt.Fprintf(conn, "%s\n", sc.Text()); err != nil {
			break
		}
	}
	// The server answers what was sent before a line too long to read; the
	// rest of the input is not sent, and the exit status says so.
	inErr := sc.Err()
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	if err := <-done; err != nil {
		fmt.Fprintf(os.Stderr, "vigia client: %v\n", err)
		return 1
	}
	if inErr != nil {
		fmt.Fprintf(os.Stderr, "vigia client: reading standard input: %v (requests are at most 64 KiB); stopped there\n", inErr)
		return 1
	}
	return 0
}
