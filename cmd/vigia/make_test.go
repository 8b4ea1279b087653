package main

// Tests of the Makefile's targets that run processes.

import (
	"bytes"
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
