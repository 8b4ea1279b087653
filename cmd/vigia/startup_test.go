package main

// End-to-end tests of the server's start: a port in use, a data dir in use
// or unusable make it exit non-zero at once with one line that says what
// to do.

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// startFails runs the server with args, expects it to exit non-zero with
// nothing on stdout and exactly one line on stderr containing every one of
// wants, and returns that line.
func startFails(t *testing.T, dataDir string, args []string, wants ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), exitTimeout)
	defer cancel()
	proto := serverCommand(t, dataDir, args...)
	cmd := exec.CommandContext(ctx, proto.Path, proto.Args[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("server still running %v after start, want an exit:\n%s", exitTimeout, stderr.String())
	}
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() == 0 {
		t.Fatalf("exit %v, want a non-zero status; stderr:\n%s", err, stderr.String())
	}
	line := stderr.String()
	if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") || stdout.Len() > 0 {
		t.Errorf("stderr %q and stdout %q, want one line on stderr", line, stdout.String())
	}
	for _, w := range wants {
		if !strings.Contains(line, w) {
			t.Errorf("stderr %q does not say %q", line, w)
		}
	}
	t.Logf("stderr: %s", line)
	return line
}

func TestStartupErrors(t *testing.T) {
	t.Parallel()
	binary(t)
	busyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { busyLn.Close() })
	inUse := busyLn.Addr().String()

	t.Run("native port in use", func(t *testing.T) {
		t.Parallel()
		startFails(t, t.TempDir(), []string{"--native-addr", inUse}, inUse, "already in use", "--native-addr")
	})
	t.Run("http port in use", func(t *testing.T) {
		t.Parallel()
		startFails(t, t.TempDir(), []string{"--http-addr", inUse}, inUse, "already in use", "--http-addr")
	})
	t.Run("bad address", func(t *testing.T) {
		t.Parallel()
		startFails(t, t.TempDir(), []string{"--native-addr", "127.0.0.1:99999"}, "--native-addr")
	})
	t.Run("data dir in use", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		first := startServer(t, dir, "--http-addr", "off")
		startFails(t, dir, nil, dir, "in use", "--data-dir")
		// The running server is unharmed.
		first.alive()
		c := first.dial()
		c.expect("LOG still.here 1", wantInserted)
		c.expect("QUERY still.here COUNT 100000", "200 [1]")
	})
	t.Run("data dir under a file", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(file, "data")
		startFails(t, dir, nil, dir, "--data-dir")
	})
	t.Run("data dir is a file", func(t *testing.T) {
		t.Parallel()
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		startFails(t, file, nil, file, "--data-dir")
	})
	t.Run("data dir read-only", func(t *testing.T) {
		t.Parallel()
		if os.Geteuid() == 0 {
			t.Skip("root writes to read-only directories")
		}
		dir := filepath.Join(t.TempDir(), "ro")
		if err := os.Mkdir(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		startFails(t, dir, nil, dir, "not writable", "--data-dir")
	})
	// Zero or negative limits and durations, and empty directories and
	// addresses, are refused, not replaced by the defaults; URLs are
	// checked before the store opens.
	for _, args := range [][]string{
		{"--max-conns", "-5"}, {"--http-max-conns", "0"}, {"--max-inflight", "0"}, {"--max-series", "0"}, {"--max-query-points", "-1"},
		{"--retention", "0"}, {"--retention", "-1h"}, {"--alert-interval", "-1s"}, {"--idle-timeout", "0"},
		{"--flush-interval", "0s"}, {"--max-query-memory", "0"},
		{"--data-dir", ""}, {"--native-addr", ""}, {"--http-addr", ""},
		{"--native-addr", "127.0.0.1:7599", "--http-addr", "127.0.0.1:7599"},
		{"--alert-webhook", "example.com/hook"}, {"--alert-webhook", "ftp://example.com"}, {"--external-url", "vigia:7575"},
	} {
		t.Run("flag "+strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			_, stderr, code := runVigia(t, "", append([]string{"server", "--data-dir", t.TempDir(), "--native-addr", "off", "--http-addr", "off"}, args...)...)
			if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, args[0]+" ") {
				t.Errorf("%v: status %d, stderr %q; want exit status 2 and one line naming %s", args, code, stderr, args[0])
			}
		})
	}
}

// TestToolFlagErrors: vigia load and vigia bench refuse values that mean
// nothing with exit status 2 and one line naming the flag, before they
// reach for a server.
func TestToolFlagErrors(t *testing.T) {
	t.Parallel()
	// Above every process id in use.
	pidMax, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		pidMax = []byte("2147483647")
	}
	for _, args := range [][]string{
		{"load", "--rate", "inf"}, {"load", "--rate", "0"}, {"load", "--rate", "NaN"},
		{"load", "--prefix", "a b"}, {"load", "--prefix", ""}, {"load", "--prefix", strings.Repeat("x", 250)},
		{"bench", "--seed", "0"}, {"bench", "--paced-fraction", "0"}, {"bench", "--paced-fraction", "-0.5"}, {"bench", "--paced-rate", "-1"},
		{"bench", "--prefix", "a\tb"}, {"bench", "--long-prefix", ""}, {"bench", "--pid", "-1"}, {"bench", "--pid", strings.TrimSpace(string(pidMax))},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			t.Parallel()
			_, stderr, code := runVigia(t, "", append(args, "--addr", "127.0.0.1:1")...)
			if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, args[1]) {
				t.Errorf("%v: status %d, stderr %q; want exit status 2 and one line naming %s", args, code, stderr, args[1])
			}
		})
	}
}

// TestFlagUsage: --help prints the command's usage on standard output and
// exits 0; a flag that does not parse prints one line naming it and
// pointing to --help, and exits 2.
func TestFlagUsage(t *testing.T) {
	t.Parallel()
	for cmd, badValue := range map[string][]string{
		"server": {"--max-conns", "many"},
		"client": {"--timeout", "soon"},
		"load":   {"--clients", "1.5"},
		"bench":  {"--live=maybe"},
	} {
		t.Run(cmd, func(t *testing.T) {
			t.Parallel()
			stdout, stderr, code := runVigia(t, "", cmd, "--help")
			if code != 0 || stderr != "" || !strings.HasPrefix(stdout, "Usage: vigia "+cmd+" ") {
				t.Errorf("%s --help: status %d, stdout %q, stderr %q; want the usage on stdout, status 0", cmd, code, stdout, stderr)
			}
			for _, args := range [][]string{{"--no-such-flag"}, {"--prefix"}, badValue} {
				stdout, line, code := runVigia(t, "", append([]string{cmd}, args...)...)
				if code != 2 || stdout != "" ||
					strings.Count(line, "\n") != 1 || !strings.HasPrefix(line, "vigia "+cmd+": ") || !strings.Contains(line, "--help") {
					t.Errorf("%s %q: status %d, stdout %q, stderr %q; want one line on stderr pointing to --help, status 2", cmd, args, code, stdout, line)
				}
			}
		})
	}
}
