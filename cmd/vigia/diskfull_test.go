package main

// End-to-end test of a full disk: the data dir on a small tmpfs, filled
// up by another file while the server runs.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mountTmpfs mounts a tmpfs of size bytes on a new temp dir and returns
// it; it is unmounted at the end of the test, after the server (started
// later, so cleaned up first) is killed. The test is skipped unless it
// runs as root and the mount works.
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("mount tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes path until its file system has no space left.
func fillDisk(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = 0xaa
	}
	for {
		if _, err = f.Write(chunk); err != nil {
			break
		}
	}
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling %s: %v, want ENOSPC", path, err)
	}
}

// fullID is the id of series i of the test: 252 bytes, so that each
// LOG of a new one adds about 270 bytes to the write-ahead log.
func fullID(i int) string {
	return fmt.Sprintf("full.%06d.%s", i, strings.Repeat("x", 240))
}

// logIDs logs sample i+1 at baseSec+i into series fullID(i) for each i,
// pipelined on a new connection, and sorts the LOGs by their reply: a
// 201, a 500 or 503 (the store refused), or none (the server closed the
// connection after a refusal). Any other reply fails the test.
func logIDs(t *testing.T, s *testServer, ids []int) (acked, refused, unanswered []int) {
	t.Helper()
	c := s.dial()
	defer c.close()
	var b strings.Builder
	for _, i := range ids {
		fmt.Fprintf(&b, "LOG %s %d %d\n", fullID(i), i+1, baseSec+i)
	}
	got, _ := pipeline(c.nc, b.String(), len(ids), nil)
	for k, i := range ids {
		switch {
		case k >= len(got):
			unanswered = append(unanswered, i)
		case got[k] == wantInserted+"\n":
			acked = append(acked, i)
		case got[k] == "500 Internal Server Error\n" || got[k] == wantBusy+"\n":
			refused = append(refused, i)
		default:
			t.Fatalf("LOG %s: %q, want 201, 500 or 503", fullID(i), got[k])
		}
	}
	return acked, refused, unanswered
}

// logUntilRefused logs new series fullID(from), fullID(from+1), ...,
// pipelined in rounds of 2000, then 200, 20 and 1, each round size until
// a round has a LOG refused, and returns the LOGs acknowledged and those
// refused or unanswered.
func logUntilRefused(t *testing.T, s *testServer, from int) (acked, refused []int) {
	t.Helper()
	id := from
	for _, round := range []int{2000, 200, 20, 1} {
		for {
			if id-from > 200000 {
				t.Fatalf("%d LOGs acknowledged on a full disk; the WAL segment holds 16 MiB", len(acked))
			}
			ids := make([]int, round)
			for k := range ids {
				ids[k] = id + k
			}
			id += round
			a, r, u := logIDs(t, s, ids)
			acked = append(acked, a...)
			refused = append(append(refused, r...), u...)
			if len(r) > 0 {
				break
			}
		}
	}
	return acked, refused
}

// checkIDs checks that every series fullID(i) holds its one sample.
func checkIDs(t *testing.T, s *testServer, ids []int, when string) {
	t.Helper()
	c := s.dial()
	defer c.close()
	for len(ids) > 0 {
		n := min(len(ids), 5000)
		var b strings.Builder
		for _, i := range ids[:n] {
			fmt.Fprintf(&b, "QUERY %s SUM 86400 %d\n", fullID(i), baseSec)
		}
		got, err := pipeline(c.nc, b.String(), n, nil)
		if err != nil {
			t.Fatalf("%s: QUERY: %d replies, then %v", when, len(got), err)
		}
		for k, i := range ids[:n] {
			if want := fmt.Sprintf("200 [%d.0]\n", i+1); got[k] != want {
				t.Fatalf("%s: acknowledged series %d: QUERY SUM: %q, want %q", when, i, got[k], want)
			}
		}
		ids = ids[n:]
	}
}

// flushes returns the flushes the server's /metrics counts.
func (s *testServer) flushes() int {
	s.t.Helper()
	_, body := httpGet(s.t, "http://"+s.http+"/metrics")
	return int(metricValue(s.t, body, "vigia_tsdb_flushes_total"))
}

// TestDiskFull runs the server on a small tmpfs and fills it up: the
// server keeps running and answering; a LOG it cannot make durable gets
// a 500 or 503, never a 201; everything it acknowledged can be queried
// while the disk is full and after SIGKILL and restarts, with the disk
// full or not; once space is freed, LOGs and flushes succeed again
// without a restart; and the log says that the disk is full.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	// 128 MiB: the write-ahead log preallocates 16 MiB segments, two at a
	// time, and the flush after the full disk has to write, besides them,
	// the series index of the test's 60,000 long ids (16 MiB).
	mnt := mountTmpfs(t, 128<<20)
	dataDir := filepath.Join(mnt, "data")
	filler := filepath.Join(mnt, "filler")
	s := startServer(t, dataDir)
	logBatch(t, s.dial(), "full.base", 0, 1000)

	// Fill the disk once the WAL segment prepared ahead of the current
	// one is in place.
	next := filepath.Join(dataDir, "metrics", "wal", "0000000000000001.wal")
	waitFor(t, startTimeout, "WAL segment 1 prepared", func() bool {
		_, err := os.Stat(next)
		return err == nil
	})
	fillDisk(t, filler)

	// A flush fails, for want of room for its parts; it moved the WAL on
	// to the segment prepared ahead, and the next one cannot be prepared.
	if code, body := httpPost(t, "http://"+s.http+"/api/v1/admin/flush"); code == 200 {
		t.Errorf("flush on a full disk: %d %s, want an error", code, body)
	}

	// LOG new series until the store refuses even one: their WAL records
	// fill the segment in use, and there is no room for the next.
	acked, refused := logUntilRefused(t, s, 0)
	id := len(acked) + len(refused)
	s.alive()
	t.Logf("full disk: %d LOGs acknowledged, %d refused", len(acked), len(refused))
	waitFor(t, startTimeout, "the log saying that the disk is full", func() bool {
		return strings.Contains(s.log(), "no space left on device")
	})
	c := s.dial()
	expectSeries(t, c, "full.base", 1000)
	checkIDs(t, s, acked, "disk full")

	// A restart while the disk is full: it starts, or fails with one line
	// saying why; it loses nothing.
	s.kill()
	startedFull := true
	if err := s.tryStart(); err != nil {
		lines := strings.Split(strings.TrimSpace(s.log()), "\n")
		last := lines[len(lines)-1]
		if code := s.cmd.ProcessState.ExitCode(); code != 1 || !strings.HasPrefix(last, "vigia server: ") ||
			!strings.Contains(last, "no space left on device") || strings.Contains(s.log(), "panic") {
			t.Fatalf("start on a full disk: exit %d, want it to start or to exit 1 with one line saying the disk is full:\n%s",
				code, s.log())
		}
		t.Logf("start on a full disk: %s", last)
		startedFull = false
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
		s.start()
	}
	c = s.dial()
	expectSeries(t, c, "full.base", 1000)
	checkIDs(t, s, acked, "restart on a full disk")
	if startedFull {
		// The store refuses new series again, once the WAL segment
		// it writes is full (the restart let go of the records of the
		// series refused before, which the next commit would carry).
		a, r := logUntilRefused(t, s, id)
		acked, refused = append(acked, a...), append(refused, r...)
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	}
	// Space freed: LOGs succeed again, without a restart. The LOG of a
	// series that a refused LOG created in the store survives a kill too.
	waitFor(t, startTimeout, "a LOG acknowledged once space is freed", func() bool {
		a, _, _ := logIDs(t, s, refused[:1])
		return len(a) == 1
	})
	if startedFull {
		// The log reaches s.log() through a pipe: wait for the line.
		waitFor(t, startTimeout, "the log saying that writes are accepted again", func() bool {
			return strings.Contains(s.log(), "writes are accepted again")
		})
	}
	if a, r, u := logIDs(t, s, refused[1:]); len(r)+len(u) > 0 {
		t.Fatalf("space freed: %d LOGs acknowledged, %d refused, %d unanswered", len(a), len(r), len(u))
	}
	acked = append(acked, refused...)
	c = s.dial()
	logBatch(t, c, "full.base", 1000, 1100)
	s.alive()
	s.kill()
	s.restart()
	c = s.dial()
	expectSeries(t, c, "full.base", 1100)
	checkIDs(t, s, acked, "space freed, after SIGKILL")
	if code, body := httpPost(t, "http://"+s.http+"/api/v1/admin/flush"); code != 200 {
		t.Fatalf("flush once space is freed: %d %s", code, body)
	}

	// Full again, with background flushes every second: they fail, and
	// one succeeds soon after space is freed.
	logBatch(t, c, "full.base", 1100, 1200)
	fillDisk(t, filler)
	s.kill()
	s.args = []string{"--flush-interval", "1s"}
	if err := s.tryStart(); err != nil {
		t.Fatalf("start on a full disk with a WAL segment prepared: %v", err)
	}
	c = s.dial()
	expectSeries(t, c, "full.base", 1200)
	checkIDs(t, s, acked, "full again, after SIGKILL")
	waitFor(t, startTimeout, "a background flush failing on the full disk", func() bool {
		return strings.Contains(s.log(), "flush failed")
	})
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	waitFor(t, startTimeout, "a background flush once space is freed", func() bool {
		return s.flushes() > 0
	})
	logBatch(t, c, "full.base", 1200, 1300)
	if code := s.terminate(); code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	s.restart()
	c = s.dial()
	expectSeries(t, c, "full.base", 1300)
	checkIDs(t, s, acked, "after SIGTERM")

	// SIGTERM on a full disk: the server cannot flush its head, and exits
	// saying so in one line; the next start replays the head.
	logBatch(t, c, "full.base", 1300, 1400)
	fillDisk(t, filler)
	if code := s.terminate(); code != 0 {
		lines := strings.Split(strings.TrimSpace(s.log()), "\n")
		if last := lines[len(lines)-1]; code != 1 || !strings.HasPrefix(last, "vigia server: ") ||
			!strings.Contains(last, "no space left on device") || !strings.Contains(last, "the next start replays it") {
			t.Errorf("SIGTERM on a full disk: exit %d, want 0, or 1 with one line saying that the disk is full and that the next start replays what was acknowledged:\n%s",
				code, s.log())
		}
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	s.restart()
	c = s.dial()
	expectSeries(t, c, "full.base", 1400)
	checkIDs(t, s, acked, "after SIGTERM on a full disk")
}
