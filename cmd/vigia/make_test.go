package main

// Tests of the Makefile's targets that run processes.

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// TestMakeDownReportsSurvivor: a process make up recorded that does not
// stop within STOP_TIMEOUT of SIGTERM is reported, make down fails, and its
// PID file is kept, so that make up still refuses to start and make down
// can be run again.
func TestMakeDownReportsSurvivor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	run := t.TempDir()
	// A process whose command line starts with BIN (here sh) and that
	// ignores SIGTERM.
	stubborn := exec.Command("sh", "-c", `trap "" TERM; sleep 60`)
	if err := stubborn.Start(); err != nil {
		t.Fatal(err)
	}
	pid := stubborn.Process.Pid
	t.Cleanup(func() {
		syscall.Kill(pid, syscall.SIGKILL)
		stubborn.Wait()
	})
	pidFile := filepath.Join(run, "server.pid")
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-s", "-C", filepath.Join("..", ".."), "down", "BIN=sh", "RUN_DIR="+run, "STOP_TIMEOUT=1")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if _, statErr := os.Stat(pidFile); err == nil || statErr != nil || !strings.Contains(out.String(), "still runs") {
		t.Errorf("make down: %v, pid file kept: %v, output:\n%s\nwant a failure saying pid %d still runs, its pid file kept", err, statErr == nil, out.String(), pid)
	}
}

// TestMakeUpDown: make up starts a server and the load clients in the
// background, refuses to start them twice, and make down stops exactly
// them; a server that cannot start makes make up fail with the server's
// error and a hint at the make variables, leaving no PID file behind.
func TestMakeUpDown(t *testing.T) {
	if testing.Short() {
		t.Skip("runs make")
	}
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "vigia") // make up builds it
	run := t.TempDir()
	freeAddr := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		return ln.Addr().String()
	}
	vars := []string{"BIN=" + bin, "RUN_DIR=" + run, "CLIENT_REPLICAS=2",
		"NATIVE_ADDR=" + freeAddr(), "HTTP_ADDR=" + freeAddr()}
	makeRun := func(target string, extra ...string) (string, error) {
		cmd := exec.Command("make", append([]string{"-s", "-C", filepath.Join("..", ".."), target}, append(vars, extra...)...)...)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	// runs reports whether pid runs bin, as the Makefile checks it.
	runs := func(pid int) bool {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		return err == nil && strings.HasPrefix(string(b), bin+"\x00")
	}
	pidFiles := []string{"server.pid", "load-1.pid", "load-2.pid"}
	var pids []int
	t.Cleanup(func() {
		for _, pid := range pids {
			if runs(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})

	if out, err := makeRun("up"); err != nil {
		t.Fatalf("make up: %v\n%s", err, out)
	}
	for _, f := range pidFiles {
		b, err := os.ReadFile(filepath.Join(run, f))
		if err != nil {
			t.Fatalf("make up left no %s: %v", f, err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		pids = append(pids, pid)
		if !runs(pid) {
			t.Errorf("%s: pid %d does not run %s", f, pid, bin)
		}
	}
	if out, err := makeRun("up"); err == nil || !strings.Contains(out, "already up") {
		t.Errorf("second make up: %v, output:\n%s\nwant a failure saying it is already up", err, out)
	}
	out, err := makeRun("down")
	if err != nil {
		t.Fatalf("make down: %v\n%s", err, out)
	}
	for i, f := range pidFiles {
		if _, err := os.Stat(filepath.Join(run, f)); err == nil {
			t.Errorf("make down kept %s", f)
		}
		if runs(pids[i]) {
			t.Errorf("make down: pid %d of %s still runs", pids[i], f)
		}
		if !strings.Contains(out, fmt.Sprintf("stopped %s (%d)", filepath.Join(run, f), pids[i])) {
			t.Errorf("make down output does not say it stopped %s:\n%s", f, out)
		}
	}

	// A native address in use.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	out, err = makeRun("up", "NATIVE_ADDR="+busy.Addr().String())
	if err == nil || !strings.Contains(out, "already in use") || !strings.Contains(out, "NATIVE_ADDR") {
		t.Errorf("make up with NATIVE_ADDR in use: %v, output:\n%s\nwant a failure with the server's error and a hint at NATIVE_ADDR", err, out)
	}
	if _, err := os.Stat(filepath.Join(run, "server.pid")); err == nil {
		t.Errorf("make up that failed left %s", filepath.Join(run, "server.pid"))
	}
}
