package loadgen

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// serverMetrics are the figures Bench reads from the server's /metrics.
type serverMetrics struct {
	diskBytes, walBytes, appended, commits, busy, parts float64
	// The time the server has spent flushing and merging; hasBackground
	// is false for servers older than these metrics.
	flushing, merging float64
	headSamples       float64 // replayed from the WAL at a restart, not yet flushed
	hasBackground     bool
}

// scrapeMetrics reads the server's /metrics, failing after stall.
func scrapeMetrics(ctx context.Context, httpAddr string, stall time.Duration) (serverMetrics, error) {
	var m serverMetrics
	ctx, cancel := context.WithTimeout(ctx, stall)
	defer cancel()
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
		"vigia_tsdb_parts":                  &m.parts,
	}
	background := map[string]*float64{ // not on older servers
		"vigia_tsdb_flush_seconds_total": &m.flushing,
		"vigia_tsdb_merge_seconds_total": &m.merging,
	}
	optional := map[string]*float64{ // not on older servers either
		"vigia_tsdb_head_samples": &m.headSamples,
	}
	found := 0
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		p := want[name]
		if p == nil {
			if p = background[name]; p != nil {
				m.hasBackground = true
			} else if p = optional[name]; p == nil {
				continue
			}
		} else {
			found++
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return m, fmt.Errorf("read metrics: %s: %w", name, err)
		}
		*p = v
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
// long it took. It fails after stall.
func flushServer(ctx context.Context, httpAddr string, stall time.Duration) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, stall)
	defer cancel()
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

// cpuSample is a reading of CPU time: of the server process, of this
// process, and of the whole machine.
type cpuSample struct {
	server, self                time.Duration
	busy, softirq, steal, total time.Duration // the machine's
	ok                          bool
}

// userHZ is the unit of the times in /proc: 100 per second on every Linux.
const userHZ = 100

// readCPU reads the CPU times of process pid (0: none), of this process
// and of the machine, from /proc (Linux only; ok is false elsewhere).
func readCPU(pid int) cpuSample {
	var s cpuSample
	if pid > 0 {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return s
		}
		// The fields after the command name, which is in parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 13 {
			return s
		}
		ut, _ := strconv.ParseInt(f[11], 10, 64)
		st, _ := strconv.ParseInt(f[12], 10, 64)
		s.server = time.Duration(ut+st) * time.Second / userHZ
	}
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return s
	}
	s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return s
	}
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		d := time.Duration(n) * time.Second / userHZ
		// user nice system idle iowait irq softirq steal (guest time is
		// already in user)
		if i >= 8 {
			break
		}
		s.total += d
		switch i {
		case 3, 4:
		case 5, 6:
			s.softirq += d
			s.busy += d
		case 7:
			s.steal += d
		default:
			s.busy += d
		}
	}
	s.ok = true
	return s
}

// CPUUse is the CPU time spent during a phase, in seconds.
type CPUUse struct {
	Server  float64 `json:"server_cpu_seconds"`  // the server process (with --pid)
	Client  float64 `json:"client_cpu_seconds"`  // this process
	IRQ     float64 `json:"irq_cpu_seconds"`     // interrupts, softirqs: loopback TCP delivery
	Others  float64 `json:"others_cpu_seconds"`  // every other process (see OthersWithIRQ)
	Steal   float64 `json:"steal_cpu_seconds"`   // taken by the hypervisor
	Machine float64 `json:"machine_cpu_seconds"` // the cores' time, busy or not
	// OthersWithIRQ: the kernel charges interrupt time to the process it
	// interrupts (tick-based accounting, no CONFIG_IRQ_TIME_ACCOUNTING),
	// so Server and Client hold part of IRQ and Others cannot be told from
	// the interrupts that hit other processes or an idle core: Others is
	// then everything busy but the server and this process, an upper bound.
	OthersWithIRQ bool `json:"others_include_irq"`
}

func cpuUse(a, b cpuSample) *CPUUse {
	if !a.ok || !b.ok {
		return nil
	}
	u := &CPUUse{
		Server:  (b.server - a.server).Seconds(),
		Client:  (b.self - a.self).Seconds(),
		Machine: (b.total - a.total).Seconds(),
	}
	u.IRQ = (b.softirq - a.softirq).Seconds()
	u.Steal = (b.steal - a.steal).Seconds()
	others := (b.busy - a.busy).Seconds() - u.Server - u.Client
	if irqTimeSeparate() {
		others -= u.IRQ
	} else {
		u.OthersWithIRQ = true
	}
	u.Others = max(others, 0)
	return u
}

// irqTimeSeparate reports whether the kernel keeps interrupt time out of
// the processes' CPU times (CONFIG_IRQ_TIME_ACCOUNTING or full dynticks
// accounting), as far as /proc/config.gz tells; false when it cannot tell.
var irqTimeSeparate = sync.OnceValue(func() bool {
	f, err := os.Open("/proc/config.gz")
	if err != nil {
		return false
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return false
	}
	b, err := io.ReadAll(io.LimitReader(zr, 16<<20))
	if err != nil {
		return false
	}
	return bytes.Contains(b, []byte("\nCONFIG_IRQ_TIME_ACCOUNTING=y\n")) ||
		bytes.Contains(b, []byte("\nCONFIG_VIRT_CPU_ACCOUNTING_GEN=y\n"))
})
