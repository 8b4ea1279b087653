package main

// End-to-end tests of "vigia client" against a real server.

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// runClientCmd runs "vigia client" with args and stdin, and returns its
// stdout, stderr and exit status.
func runClientCmd(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	return runVigia(t, stdin, append([]string{"client"}, args...)...)
}

// runVigia runs the vigia binary with args and stdin, in a directory of
// its own, and returns its stdout, stderr and exit status.
func runVigia(t *testing.T, stdin string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), args...)
	cmd.Dir = t.TempDir() // where a data dir taken for the default ./data would go
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("vigia %q did not exit within %v", args, exitTimeout)
	}
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatal(err)
		}
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}

func TestClientCommand(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--http-addr", "off")
	addr := []string{"--addr", s.native}
	for _, tc := range []struct {
		args []string
		out  string
		code int
	}{
		{[]string{"PING"}, wantPong + "\n", 0},
		{[]string{"LOG", "cli.cpu", "0.5", "2022-04-26T00:00:00"}, wantInserted + "\n", 0},
		{[]string{"QUERY cli.cpu AVG 60"}, "200 [0.5]\n", 0},
		{[]string{"QUERY", "nope", "COUNT", "1"}, wantNotFound + "\n", 1},
		{[]string{"FOO"}, wantCommands + "\n", 1},
	} {
		out, errOut, code := runClientCmd(t, "", append(addr, tc.args...)...)
		if out != tc.out || code != tc.code || errOut != "" {
			t.Errorf("vigia client %q: stdout %q, stderr %q, status %d; want %q, status %d", tc.args, out, errOut, code, tc.out, tc.code)
		}
	}

	// Interactive: every line of standard input, and every reply.
	out, errOut, code := runClientCmd(t, "LOG cli.mem 2 2022-04-26T00:00:01\nQUERY cli.mem COUNT 60\nFOO\nPING", addr...)
	want := wantInserted + "\n200 [1]\n" + wantCommands + "\n" + wantPong + "\n"
	if out != want || code != 0 || errOut != "" {
		t.Errorf("interactive: stdout %q, stderr %q, status %d; want %q, status 0", out, errOut, code, want)
	}

	// A timeout of 0 is refused, not a reply deadline already passed.
	out, errOut, code = runClientCmd(t, "", append(addr, "--timeout", "0", "PING")...)
	if out != "" || code != 2 || !strings.Contains(errOut, "--timeout") {
		t.Errorf("--timeout 0: stdout %q, stderr %q, status %d; want a line on stderr about --timeout, status 2", out, errOut, code)
	}

	// No server: one line that says what to do.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	ln.Close()
	out, errOut, code = runClientCmd(t, "", "--addr", gone, "PING")
	if code != 1 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, gone) || !strings.Contains(errOut, "--addr") {
		t.Errorf("no server: stdout %q, stderr %q, status %d; want one line on stderr naming %s and --addr, status 1", out, errOut, code, gone)
	}
}

// TestClientCommandLongInput: a line of standard input too long to read
// stops "vigia client" with status 1 and a message, after the replies to
// the lines before it.
func TestClientCommandLongInput(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--http-addr", "off")
	in := "PING\n" + strings.Repeat("x", 2<<20) + "\nLOG cli.after 1\n"
	out, errOut, code := runClientCmd(t, in, "--addr", s.native)
	if out != wantPong+"\n" || code != 1 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "too long") {
		t.Errorf("stdout %q, stderr %q, status %d; want the PONG, one line on stderr saying the line is too long, status 1", out, errOut, code)
	}
	s.dial().expect("QUERY cli.after COUNT 1", wantNotFound)

	// A line the client can send but the server refuses as too long (over
	// 64 KiB): the server answers it and closes the connection, and the
	// client says how many requests went unanswered.
	in = "PING\nLOG cli.big " + strings.Repeat("1", 100<<10) + "\nLOG cli.after 1\nPING\n"
	out, errOut, code = runClientCmd(t, in, "--addr", s.native)
	if !strings.HasPrefix(out, wantPong+"\n400 ") || strings.Count(out, "\n") != 2 || code != 1 ||
		strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "closed the connection after answering 2 of the") {
		t.Errorf("stdout %q, stderr %q, status %d; want the PONG and a 400, one line on stderr saying 2 requests were answered, status 1", out, errOut, code)
	}
	s.dial().expect("QUERY cli.after COUNT 1", wantNotFound)
}

// TestCopyRepliesCounts counts reply lines, long ones once, and leaves
// pushed ALERT lines out, long ones too.
func TestCopyRepliesCounts(t *testing.T) {
	server, client := net.Pipe()
	long := strings.Repeat("x", 10000)
	in := "200 PONG\n200 [" + long + "]\nALERT {" + long + "}\nALERT {}\n201 Metric Inserted\n503 The server is busy, try again later\n"
	go func() {
		server.Write([]byte(in))
		server.Close()
	}()
	var out bytes.Buffer
	n, busy, err := copyReplies(&out, client)
	if err != nil || n != 4 || !busy || out.String() != in {
		t.Fatalf("%d replies (busy %v), err %v, copied %d of %d bytes; want 4 replies, one busy, all copied", n, busy, err, out.Len(), len(in))
	}
}

// TestClientNoticesClose: the server closing the connection (here its idle
// timeout) ends an interactive client at once, while its input is still
// open, with status 1 and a line saying so.
func TestClientNoticesClose(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--http-addr", "off", "--idle-timeout", "1s")
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), "client", "--addr", s.native)
	cmd.Stdin = pr
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pr.Close()
	pw.Write([]byte("PING\n"))
	err = cmd.Wait()
	if ctx.Err() != nil {
		t.Fatalf("client still running %v after the server closed the connection", exitTimeout)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || out.String() != wantPong+"\n" ||
		!strings.Contains(errOut.String(), "closed the connection after answering 1 of the 1 requests sent") {
		t.Errorf("status %v, stdout %q, stderr %q; want the PONG, status 1, a line saying the server closed the connection", err, out.String(), errOut.String())
	}
}

// TestClientBusy: a server at --max-conns answers 503 and closes; the
// client's exit status is 1 whether its input ended before or after that.
func TestClientBusy(t *testing.T) {
	t.Parallel()
	s := startServer(t, t.TempDir(), "--http-addr", "off", "--max-conns", "1")
	s.dial().expect("PING", wantPong) // holds the one connection
	out, errOut, code := runClientCmd(t, "PING\n", "--addr", s.native)
	if out != "503 The server is busy, try again later\n" || code != 1 || !strings.Contains(errOut, "busy (503)") {
		t.Errorf("stdout %q, stderr %q, status %d; want the 503, status 1, a line saying the server was busy", out, errOut, code)
	}
}
