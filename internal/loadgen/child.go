package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ServerOptions configures StartServer.
type ServerOptions struct {
	// Bin is the vigia binary. Required.
	Bin string
	// DataDir is the server's --data-dir. Required.
	DataDir string
	// NativeAddr and HTTPAddr are the addresses to listen on. Default:
	// free ports on 127.0.0.1.
	NativeAddr, HTTPAddr string
	// Args are more server flags, such as --retention 8760h.
	Args []string
	// Log receives the server's output. Default: none is kept but the
	// last lines, which errors quote.
	Log io.Writer
	// StartTimeout bounds the wait for the server to answer PING.
	// Default 30s.
	StartTimeout time.Duration
}

// Server is a vigia server running as a child process, listening on free
// loopback ports.
type Server struct {
	NativeAddr string // host:port of the native protocol
	HTTPAddr   string // host:port of the HTTP API
	cmd        *exec.Cmd
	out        *tailBuffer
	exited     chan struct{}
	err        error // Wait's error, once exited is closed
}

// StartServer starts "Bin server" and returns once it answers PING. On free
// 127.0.0.1 ports (the default), should another program take a port in
// between, it tries again with other ports.
func StartServer(ctx context.Context, o ServerOptions) (*Server, error) {
	if o.Bin == "" || o.DataDir == "" {
		return nil, errors.New("loadgen: ServerOptions.Bin and DataDir are required")
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = 30 * time.Second
	}
	var err error
	for range 3 {
		var s *Server
		s, err = startServer(ctx, o)
		if err == nil {
			return s, nil
		}
		if o.NativeAddr != "" || !strings.Contains(err.Error(), "address already in use") {
			break
		}
	}
	return nil, err
}

func startServer(ctx context.Context, o ServerOptions) (*Server, error) {
	s := &Server{
		NativeAddr: o.NativeAddr,
		HTTPAddr:   o.HTTPAddr,
		out:        &tailBuffer{max: 8 << 10},
		exited:     make(chan struct{}),
	}
	if s.NativeAddr == "" || s.HTTPAddr == "" {
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		if s.NativeAddr == "" {
			s.NativeAddr = fmt.Sprintf("127.0.0.1:%d", ports[0])
		}
		if s.HTTPAddr == "" {
			s.HTTPAddr = fmt.Sprintf("127.0.0.1:%d", ports[1])
		}
	}
	args := append([]string{"server", "--data-dir", o.DataDir,
		"--native-addr", s.NativeAddr, "--http-addr", s.HTTPAddr}, o.Args...)
	s.cmd = exec.Command(o.Bin, args...)
	var w io.Writer = s.out
	if o.Log != nil {
		w = io.MultiWriter(s.out, o.Log)
	}
	s.cmd.Stdout, s.cmd.Stderr = w, w
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", o.Bin, err)
	}
	go func() {
		s.err = s.cmd.Wait()
		close(s.exited)
	}()
	deadline := time.Now().Add(o.StartTimeout)
	for {
		if err := Ping(s.NativeAddr, time.Second); err == nil {
			return s, nil
		}
		select {
		case <-s.exited:
			return nil, fmt.Errorf("vigia server exited at start (%v): %s", s.err, s.out.String())
		case <-ctx.Done():
			s.Kill()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Kill()
			return nil, fmt.Errorf("vigia server did not answer PING within %s: %s", o.StartTimeout, s.out.String())
		}
	}
}

// PID returns the server's process id.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// Output returns the last lines the server wrote.
func (s *Server) Output() string { return s.out.String() }

// Stop sends SIGTERM and waits up to timeout for the server to exit, then
// kills it. It returns an error unless the server exited with status 0.
func (s *Server) Stop(timeout time.Duration) error {
	select {
	case <-s.exited:
		return s.exitErr()
	default:
	}
	s.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-s.exited:
		return s.exitErr()
	case <-t.C:
		s.Kill()
		return fmt.Errorf("vigia server did not stop within %s after SIGTERM; killed", timeout)
	}
}

func (s *Server) exitErr() error {
	if s.err != nil {
		return fmt.Errorf("vigia server: %v: %s", s.err, s.out.String())
	}
	return nil
}

// Kill kills the server with SIGKILL and waits for it to exit.
func (s *Server) Kill() {
	s.cmd.Process.Kill()
	<-s.exited
}

// freePorts returns n distinct free TCP ports on 127.0.0.1. Another program
// may take one before the caller binds it.
func freePorts(n int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		lns = append(lns, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Ping sends PING on a new connection to addr and waits for 200 PONG.
func Ping(addr string, timeout time.Duration) error {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	defer nc.Close()
	nc.SetDeadline(time.Now().Add(timeout))
	if _, err := io.WriteString(nc, "PING\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(nc).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "200 PONG\n" {
		return fmt.Errorf("PING: unexpected reply %q", line)
	}
	return nil
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = append(t.b[:0], t.b[len(t.b)-t.max:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(bytes.TrimSpace(t.b))
}
