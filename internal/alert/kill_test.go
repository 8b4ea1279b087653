package alert

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	"github.com/vigia-mon/vigia/internal/query"
	"github.com/vigia-mon/vigia/internal/tsdb"
)

const helperEnv = "VIGIA_ALERT_KILL_HELPER"

// TestKilledProcessKeepsAlerts runs a monitor in a child process (this test
// binary, re-executed), registers an alert there and lets it fire, SIGKILLs
// the child by its PID, then opens the same bbolt file in a new monitor:
// the alert is still registered, still firing, and fires again on a
// breaching sample. (internal/alert/e2e_test.go does the same
// through the vigia binary and the native protocol.)
func TestKilledProcessKeepsAlerts(t *testing.T) {
	if dir := os.Getenv(helperEnv); dir != "" {
		killHelper(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledProcessKeepsAlerts$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	kill := func() {
		if !killed {
			killed = true
			syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			cmd.Wait()
		}
	}
	defer kill()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if s, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- s
				return
			}
		}
		close(ready)
	}()
	var id int64
	select {
	case s, ok := <-ready:
		if !ok {
			t.Fatal("helper exited without registering its alert")
		}
		fmt.Sscan(s, &id)
	case <-time.After(30 * time.Second):
		t.Fatal("helper did not get ready")
	}
	kill()

	db := openDB(t, filepath.Join(dir, "meta.db"))
	defer db.Close()
	const P = 200 * time.Millisecond
	m := newTestMonitor(t, newFakeStore("cpu"), Options{DB: db, Interval: P})
	ls := list(t, m)
	if len(ls) != 1 || ls[0].ID != id || ls[0].Metric != "cpu" || ls[0].State != "firing" {
		t.Fatalf("after SIGKILL: %+v, want alert %d firing", ls, id)
	}
	events, cancel := m.Subscribe()
	defer cancel()
	runMonitor(t, m)
	observed := time.Now()
	m.Observe([]tsdb.Sample{sample(1, observed.UnixMilli(), 99)})
	// The check after the sample comes at most an interval later; how much
	// later it arrives depends on how busy the machine is, so it is
	// logged, and the deadline only bounds a hang.
	select {
	case b := <-events:
		if e := decodeEvent(t, b[0]); len(b) != 1 || e.ID != id || e.State != "firing" || e.Value != 99 {
			t.Fatalf("event after restart: %+v", e)
		}
		t.Logf("the reloaded alert fired %v after the sample (interval %v)", time.Since(observed), P)
	case <-time.After(30 * time.Second):
		t.Fatal("the reloaded alert did not fire within 30 s")
	}
}

// killHelper is the child: it registers an alert, makes it fire, says
// READY and waits to be killed.
func killHelper(dir string) {
	db, err := bbolt.Open(filepath.Join(dir, "meta.db"), 0o600, nil) // fsync as the server does
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	m, err := New(Options{DB: db, Refs: newFakeStore("cpu").Refs, Interval: 20 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	id, err := m.AddRule("cpu", query.Max, 1, 50, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	events, _ := m.Subscribe()
	go m.Run(context.Background())
	m.Observe([]tsdb.Sample{sample(1, time.Now().UnixMilli(), 70)})
	<-events // the firing state is stored before subscribers hear of it
	fmt.Printf("READY %d\n", id)
	time.Sleep(time.Minute)
	os.Exit(1)
}
