package loadgen

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// serverMetrics are the figures Bench reads from the server's /metrics.
type serverMetrics struct {
	diskBytes, walBytes, appended, commits, busy float64
}

// scrapeMetrics reads the server's /metrics.
func scrapeMetrics(ctx context.Context, httpAddr string) (serverMetrics, error) {
	var m serverMetrics
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/metrics", nil)
	if err != nil {
		return m, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return m, fmt.Errorf("read metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return m, fmt.Errorf("read metrics: %s", resp.Status)
	}
	want := map[string]*float64{
		"vigia_tsdb_disk_bytes":             &m.diskBytes,
		"vigia_tsdb_wal_bytes":              &m.walBytes,
		"vigia_tsdb_appended_samples_total": &m.appended,
		"vigia_tsdb_commits_total":          &m.commits,
		"vigia_native_busy_total":           &m.busy,
	}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		if p := want[name]; p != nil {
			v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
			if err != nil {
				return m, fmt.Errorf("read metrics: %s: %w", name, err)
			}
			*p = v
			found++
		}
	}
	if err := sc.Err(); err != nil {
		return m, fmt.Errorf("read metrics: %w", err)
	}
	if found < len(want) {
		return m, fmt.Errorf("read metrics: %d of the %d vigia_ metrics wanted are missing", len(want)-found, len(want))
	}
	return m, nil
}

// flushServer asks the server to flush its head into parts and returns how
// long it took.
func flushServer(ctx context.Context, httpAddr string) (time.Duration, error) {
	start := time.Now()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+httpAddr+"/api/v1/admin/flush", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("flush: %w", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("flush: %s: %s", resp.Status, bytes.TrimSpace(body))
	}
	return time.Since(start), nil
}

// procMemory returns the peak (VmHWM) and current (VmRSS) resident set of
// process pid, in bytes, from /proc (Linux only).
func procMemory(pid int) (peak, cur int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read peak RSS of pid %d: %w", pid, err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok || (k != "VmHWM" && k != "VmRSS") {
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("read peak RSS of pid %d: %s: %w", pid, k, err)
		}
		if k == "VmHWM" {
			peak = kb << 10
		} else {
			cur = kb << 10
		}
	}
	if peak == 0 {
		return 0, 0, fmt.Errorf("read peak RSS of pid %d: no VmHWM in /proc/%d/status", pid, pid)
	}
	return peak, cur, nil
}

// Machine describes the machine a benchmark ran on.
type Machine struct {
	Cores      int    `json:"cores"`
	CPU        string `json:"cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	OS         string `json:"os"`
}

// ThisMachine returns the machine's core count and CPU model (from
// /proc/cpuinfo, when there is one).
func ThisMachine() Machine {
	m := Machine{Cores: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	return m
}
