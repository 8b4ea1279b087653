package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"runtime"
	"slices"
	"time"
)

// BenchOptions configures Bench. A zero field means its default.
type BenchOptions struct {
	// Addr is the server's native protocol address. Default
	// 127.0.0.1:7574.
	Addr string
	// HTTPAddr is the server's HTTP address, for flushes and /metrics.
	// Empty: no flush, and no disk figures.
	HTTPAddr string
	// PID is the server's process id, for its peak memory. 0: no memory
	// figures.
	PID int
	// Data is the data set of the ingest phase. Zero fields default to
	// 10,000 series x 1,000 points, seed DefaultSeed, prefix "bench" and
	// DefaultStart.
	Data Dataset
	// Conns is the number of connections the data set is sent on.
	// Default 4.
	Conns int
	// Live generates each request as it is sent, as /bench/loadgen does,
	// instead of before the clock starts: the figure then includes the
	// sender's generation cost on the same cores.
	Live bool
	// PacedDuration is the length of the latency phase. Default 5s;
	// negative skips it.
	PacedDuration time.Duration
	// PacedFraction is the rate of the latency phase, as a fraction of the
	// ingest phase's rate. Default 0.5.
	PacedFraction float64
	// PacedRate, if positive, is the rate of the latency phase in LOG/s,
	// instead of PacedFraction of the ingest rate: the way to compare two
	// builds at the same load.
	PacedRate float64
	// LongPoints is the length of the series of the query phase. Default
	// 1,000,000; negative skips the phase.
	LongPoints int
	// LongPrefix prefixes the long series' name. Default "long".
	LongPrefix string
	// Queries is how many times each QUERY is timed. Default 20.
	Queries int
	// Stall fails the run when the server answers nothing for this long,
	// over the native protocol or HTTP (a flush included). Default 60s.
	Stall time.Duration
	// Progress receives a line per phase and per second of a long phase.
	// Default io.Discard.
	Progress io.Writer
}

func (o BenchOptions) withDefaults(now time.Time) BenchOptions {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:7574"
	}
	d := &o.Data
	if d.Series <= 0 {
		d.Series = 10000
	}
	if d.Points <= 0 {
		d.Points = 1000
	}
	if d.Seed == 0 {
		d.Seed = DefaultSeed
	}
	if d.Prefix == "" {
		d.Prefix = "bench"
	}
	if d.Start == 0 {
		d.Start = DefaultStart(now, d.Points)
	}
	if o.Conns <= 0 {
		o.Conns = 4
	}
	o.Conns = min(o.Conns, d.Series)
	if o.PacedDuration == 0 {
		o.PacedDuration = 5 * time.Second
	}
	if o.PacedFraction <= 0 {
		o.PacedFraction = 0.5
	}
	if o.LongPoints == 0 {
		o.LongPoints = 1_000_000
	}
	if o.LongPrefix == "" {
		o.LongPrefix = "long"
	}
	if o.Queries <= 0 {
		o.Queries = 20
	}
	if o.Stall <= 0 {
		o.Stall = 60 * time.Second
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	return o
}

// BenchResult is what Bench measured. Pointer fields are nil for a phase
// that did not run.
type BenchResult struct {
	Machine Machine `json:"machine"`
	Series  int     `json:"series"`
	Points  int     `json:"points"`
	Seed    uint64  `json:"seed"`
	Start   int64   `json:"start"`
	Conns   int     `json:"conns"`
	Live    bool    `json:"live_generation"`

	Ingest IngestResult  `json:"ingest"`
	Disk   *DiskResult   `json:"disk,omitempty"`
	Memory *MemoryResult `json:"memory,omitempty"`
	Paced  *PacedResult  `json:"paced,omitempty"`
	Query  *QueryResult  `json:"query,omitempty"`
}

// IngestResult is the ingest phase: the data set sent pipelined as fast as
// the server acknowledges it.
type IngestResult struct {
	Samples          int64   `json:"samples"` // acknowledged
	RequestBytes     int64   `json:"request_bytes"`
	Seconds          float64 `json:"seconds"` // first write to last acknowledgement
	SamplesPerSec    float64 `json:"samples_per_sec"`
	GenerateSeconds  float64 `json:"generate_seconds,omitempty"` // pregeneration, not timed
	Commits          int64   `json:"commits,omitempty"`          // group commits (fsyncs) during the phase
	SamplesPerCommit float64 `json:"samples_per_commit,omitempty"`
	CPU              *CPUUse `json:"cpu,omitempty"`
	// ServerNsPerSample is the server's CPU time per sample: what the rate
	// would be on an idle machine, whatever else ran during the phase.
	ServerNsPerSample float64 `json:"server_cpu_ns_per_sample,omitempty"`
}

// DiskResult is the store's size after the ingest phase and a flush.
type DiskResult struct {
	FlushSeconds   float64 `json:"flush_seconds"`
	Bytes          int64   `json:"bytes"` // growth of vigia_tsdb_disk_bytes
	Samples        int64   `json:"samples"`
	BytesPerSample float64 `json:"bytes_per_sample"`
	WALBytes       int64   `json:"wal_bytes"` // left after the flush
	Parts          int     `json:"parts"`     // raw parts after the flush (each adds per-series overhead until merged)
	// The same once background merges have settled (no change for a
	// second, waiting at most settleMax).
	SettledBytes          int64   `json:"settled_bytes"`
	SettledParts          int     `json:"settled_parts"`
	SettledBytesPerSample float64 `json:"settled_bytes_per_sample"`
	SettleSeconds         float64 `json:"settle_seconds"` // when the last change was seen
}

// MemoryResult is the server's resident memory.
type MemoryResult struct {
	PeakAfterIngest int64 `json:"peak_rss_after_ingest_bytes"` // VmHWM after the ingest phase and flush
	Peak            int64 `json:"peak_rss_bytes"`              // VmHWM at the end
	Current         int64 `json:"rss_bytes"`                   // VmRSS at the end
}

// PacedResult is the latency phase: LOG requests at a fraction of the
// ingest rate, each request's round trip measured.
type PacedResult struct {
	TargetPerSec float64 `json:"target_per_sec"`
	SentPerSec   float64 `json:"sent_per_sec"`
	Samples      int64   `json:"samples"` // acknowledged
	Measured     uint64  `json:"measured"`
	Seconds      float64 `json:"seconds"`
	P50Ms        float64 `json:"p50_ms"`
	P99Ms        float64 `json:"p99_ms"`
	P999Ms       float64 `json:"p999_ms"`
	MaxMs        float64 `json:"max_ms"`
	// The same requests timed from the write of their burst rather than
	// from its scheduled time: without the sender's own delay (its timer,
	// waiting for a core), as the figures before coordinated omission was
	// accounted for were taken.
	FromWriteP50Ms float64 `json:"from_write_p50_ms"`
	FromWriteP99Ms float64 `json:"from_write_p99_ms"`

	Commits           int64   `json:"commits,omitempty"`
	SamplesPerCommit  float64 `json:"samples_per_commit,omitempty"`
	CPU               *CPUUse `json:"cpu,omitempty"`
	ServerNsPerSample float64 `json:"server_cpu_ns_per_sample,omitempty"`

	// The whole seconds after the first, apart: those in which the
	// server flushed or merged, and the others.
	Busy  *PacedSplit `json:"busy,omitempty"`
	Quiet *PacedSplit `json:"quiet,omitempty"`
}

// PacedSplit is the latency of the requests answered in some of the
// seconds of the latency phase.
type PacedSplit struct {
	Seconds int     `json:"seconds"`
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
}

func newPacedSplit(secs int, h *HistSnapshot) *PacedSplit {
	return &PacedSplit{Seconds: secs, P50Ms: ms(h.Quantile(0.5)), P99Ms: ms(h.Quantile(0.99))}
}

// QueryResult is the query phase: QUERY <series> MAX 60 over one long
// series, from the in-memory head and from parts after a flush.
type QueryResult struct {
	Request     string     `json:"request"`
	Samples     int64      `json:"samples"`
	LoadSeconds float64    `json:"load_seconds"` // the series sent on one connection
	Windows     int        `json:"windows"`
	ReplyBytes  int        `json:"reply_bytes"`
	Head        LatencySet `json:"head"`
	Parts       LatencySet `json:"parts,omitzero"`
}

// LatencySet summarizes repeated timings.
type LatencySet struct {
	N        int     `json:"n"`
	MedianMs float64 `json:"median_ms"`
	P99Ms    float64 `json:"p99_ms"`
	MinMs    float64 `json:"min_ms"`
	MaxMs    float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// Bench measures the vigia server at o.Addr in phases: ingest (the data
// set, pipelined on o.Conns connections, as fast as acknowledged), disk
// (a flush, then bytes on disk per sample), latency (LOG round trips at
// o.PacedFraction of the ingest rate), query (QUERY MAX 60 over a series of
// o.LongPoints samples, from the head and from parts), and the server's
// peak memory. The server should be fresh: Bench adds its samples to
// whatever it holds, and the long series' oldest points must be within its
// retention (vigia server --retention 8760h).
func Bench(ctx context.Context, o BenchOptions) (*BenchResult, error) {
	o = o.withDefaults(time.Now())
	d := o.Data
	res := &BenchResult{
		Machine: ThisMachine(), Series: d.Series, Points: d.Points, Seed: d.Seed, Start: d.Start,
		Conns: o.Conns, Live: o.Live,
	}
	p := o.Progress
	if err := Ping(o.Addr, 5*time.Second); err != nil {
		return nil, fmt.Errorf("cannot reach the server at %s: %w", o.Addr, unwrapOp(err))
	}
	var before serverMetrics
	if o.HTTPAddr != "" {
		var err error
		if before, err = scrapeMetrics(ctx, o.HTTPAddr, o.Stall); err != nil {
			return nil, err
		}
	}

	// Ingest.
	series := make([][]*Series, o.Conns)
	srcs := make([]connSource, o.Conns)
	genStart := time.Now()
	for c := range srcs {
		series[c] = d.ConnSeries(c, o.Conns)
		if o.Live {
			srcs[c] = liveSource(series[c], d.Start, d.Points)
		} else {
			srcs[c] = pregenSource(series[c], d.Start, d.Points)
		}
	}
	if !o.Live {
		res.Ingest.GenerateSeconds = time.Since(genStart).Seconds()
		fmt.Fprintf(p, "generated %d requests in %.1fs\n", d.Samples(), res.Ingest.GenerateSeconds)
	}
	fmt.Fprintf(p, "ingest: %d series x %d points on %d connections\n", d.Series, d.Points, o.Conns)
	cpu0 := readCPU(o.PID)
	sr, err := sendPipelined(ctx, o.Addr, srcs, o.Stall, p, "ingest")
	res.Ingest.CPU = cpuUse(cpu0, readCPU(o.PID))
	if u := res.Ingest.CPU; u != nil && o.PID > 0 && sr.acked > 0 {
		res.Ingest.ServerNsPerSample = u.Server * 1e9 / float64(sr.acked)
	}
	srcs = nil
	res.Ingest.Samples, res.Ingest.RequestBytes, res.Ingest.Seconds = sr.acked, sr.bytes, sr.elapsed.Seconds()
	if err != nil {
		return res, fmt.Errorf("ingest: %w", err)
	}
	res.Ingest.SamplesPerSec = float64(sr.acked) / sr.elapsed.Seconds()
	fmt.Fprintf(p, "ingest: %d samples acknowledged in %.2fs: %.0f samples/s\n", sr.acked, sr.elapsed.Seconds(), res.Ingest.SamplesPerSec)

	// Disk.
	if o.HTTPAddr != "" {
		after, err := scrapeMetrics(ctx, o.HTTPAddr, o.Stall)
		if err != nil {
			return res, err
		}
		res.Ingest.Commits = int64(after.commits - before.commits)
		if res.Ingest.Commits > 0 {
			res.Ingest.SamplesPerCommit = float64(sr.acked) / float64(res.Ingest.Commits)
		}
		took, err := flushServer(ctx, o.HTTPAddr, o.Stall)
		if err != nil {
			return res, err
		}
		after, err = scrapeMetrics(ctx, o.HTTPAddr, o.Stall)
		if err != nil {
			return res, err
		}
		if before.diskBytes > 0 || before.appended > 0 || before.headSamples > 0 {
			// The flush writes the data already there too, and merges and
			// retention change it: the difference would not be this run's.
			fmt.Fprintf(p, "disk: not measured: the server held data before the run (bytes/sample needs a server on an empty data dir)\n")
		} else if err := measureDisk(ctx, o, p, before, after, took, res); err != nil {
			return res, err
		}
	}
	if o.PID > 0 {
		peak, _, err := procMemory(o.PID)
		if err != nil {
			return res, err
		}
		res.Memory = &MemoryResult{PeakAfterIngest: peak}
	}

	// Latency at a fraction of the maximum rate.
	if o.PacedDuration > 0 {
		rate := res.Ingest.SamplesPerSec * o.PacedFraction
		if o.PacedRate > 0 {
			rate = o.PacedRate
		}
		pr, err := benchPaced(ctx, o, series, rate)
		res.Paced = pr
		if err != nil {
			return res, fmt.Errorf("latency: %w", err)
		}
	}

	// QUERY over a long series.
	if o.LongPoints > 0 {
		qr, err := benchQuery(ctx, o)
		res.Query = qr
		if err != nil {
			return res, fmt.Errorf("query: %w", err)
		}
	}
	if o.PID > 0 {
		peak, cur, err := procMemory(o.PID)
		if err != nil {
			return res, err
		}
		res.Memory.Peak, res.Memory.Current = peak, cur
	}
	return res, nil
}

// settleMax bounds the wait for background merges after a flush.
const settleMax = 15 * time.Second

// settle polls the server's metrics until its parts and disk bytes have
// not changed for a second (background merges are done), or settleMax
// passed. It returns the last reading and when, after the call, the last
// change was seen. A scrape fails after stall.
func settle(ctx context.Context, httpAddr string, last serverMetrics, stall time.Duration) (serverMetrics, time.Duration, error) {
	start := time.Now()
	stable := start
	for time.Since(stable) < time.Second && time.Since(start) < settleMax {
		select {
		case <-ctx.Done():
			return last, time.Since(start), ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		m, err := scrapeMetrics(ctx, httpAddr, stall)
		if err != nil {
			return last, time.Since(start), err
		}
		if m.parts != last.parts || m.diskBytes != last.diskBytes {
			stable = time.Now()
		}
		last = m
	}
	return last, stable.Sub(start), nil
}

// benchPaced runs the latency phase at rate samples per second in all,
// continuing the data set's series (whose generators stand after the
// ingest phase's last point).
func benchPaced(ctx context.Context, o BenchOptions, series [][]*Series, rate float64) (*PacedResult, error) {
	p := o.Progress
	d := o.Data
	perConn := rate / float64(len(series))
	srcs := make([]pacedSource, len(series))
	for c, ss := range series {
		// Enough points for the whole phase, and a little more.
		lines := int(perConn*o.PacedDuration.Seconds()*1.05) + 1
		points := (lines + len(ss) - 1) / len(ss)
		ends := make([]int, 0, points*len(ss))
		buf := make([]byte, 0, points*len(ss)*46)
		buf = AppendLOGs(buf, &ends, ss, d.Start, d.Points, d.Points+points)
		srcs[c] = pacedSource{buf: buf, ends: ends}
	}
	// Collect the ingest phase's garbage now, so that the sender does not
	// garbage-collect it while it times requests.
	runtime.GC()
	fmt.Fprintf(p, "latency: %.0f LOG/s on %d connections for %s\n", rate, len(series), o.PacedDuration)
	warmup := min(500*time.Millisecond, o.PacedDuration/10)
	var before serverMetrics
	if o.HTTPAddr != "" {
		var err error
		if before, err = scrapeMetrics(ctx, o.HTTPAddr, o.Stall); err != nil {
			return nil, err
		}
	}
	cpu0 := readCPU(o.PID)
	var background func() (float64, float64, bool)
	if o.HTTPAddr != "" && before.hasBackground {
		background = func() (float64, float64, bool) {
			sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			m, err := scrapeMetrics(sctx, o.HTTPAddr, o.Stall)
			return m.flushing, m.merging, err == nil && m.hasBackground
		}
	}
	r, err := pacedRun(ctx, o.Addr, srcs, perConn, o.PacedDuration, warmup, o.Stall, p, background)
	cpu := cpuUse(cpu0, readCPU(o.PID))
	pr := &PacedResult{
		TargetPerSec: rate,
		Samples:      r.acked,
		Measured:     r.hist.N,
		Seconds:      r.elapsed.Seconds(),
		P50Ms:        ms(r.hist.Quantile(0.5)),
		P99Ms:        ms(r.hist.Quantile(0.99)),
		P999Ms:       ms(r.hist.Quantile(0.999)),
		MaxMs:        ms(r.hist.Max),

		FromWriteP50Ms: ms(r.fromWrite.Quantile(0.5)),
		FromWriteP99Ms: ms(r.fromWrite.Quantile(0.99)),
	}
	if r.busySecs+r.quietSecs > 0 {
		pr.Busy = newPacedSplit(r.busySecs, &r.busy)
		pr.Quiet = newPacedSplit(r.quietSecs, &r.quiet)
	}
	if r.elapsed > 0 {
		pr.SentPerSec = float64(r.sent) / r.elapsed.Seconds()
	}
	if err != nil {
		return pr, err
	}
	pr.CPU = cpu
	if cpu != nil && o.PID > 0 && r.acked > 0 {
		pr.ServerNsPerSample = cpu.Server * 1e9 / float64(r.acked)
	}
	if o.HTTPAddr != "" {
		after, err := scrapeMetrics(ctx, o.HTTPAddr, o.Stall)
		if err != nil {
			return pr, err
		}
		if pr.Commits = int64(after.commits - before.commits); pr.Commits > 0 {
			pr.SamplesPerCommit = float64(r.acked) / float64(pr.Commits)
		}
	}
	fmt.Fprintf(p, "latency: %d acknowledged at %.0f/s: p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
		pr.Samples, pr.SentPerSec, pr.P50Ms, pr.P99Ms, pr.MaxMs)
	return pr, nil
}

// benchQuery loads one series of o.LongPoints points and times
// QUERY <it> MAX 60 over it, from the head, then (with an HTTP address)
// from parts after a flush.
func benchQuery(ctx context.Context, o BenchOptions) (*QueryResult, error) {
	p := o.Progress
	ld := Dataset{Series: 1, Points: o.LongPoints, Seed: o.Data.Seed, Prefix: o.LongPrefix,
		Start: DefaultStart(time.Now(), o.LongPoints)}
	ss := ld.ConnSeries(0, 1)
	name := ss[0].Name()
	qr := &QueryResult{Request: "QUERY " + name + " MAX 60"}
	if o.HTTPAddr != "" {
		// Start from an empty head, so that the head figure is the long
		// series' alone.
		if _, err := flushServer(ctx, o.HTTPAddr, o.Stall); err != nil {
			return qr, err
		}
	}
	fmt.Fprintf(p, "query: loading %s, %d points, on one connection\n", name, ld.Points)
	sr, err := sendPipelined(ctx, o.Addr, []connSource{pregenSource(ss, ld.Start, ld.Points)}, o.Stall, p, "load")
	qr.LoadSeconds = sr.elapsed.Seconds()
	if err != nil {
		return qr, err
	}
	qc, err := dialQuery(ctx, o.Addr)
	if err != nil {
		return qr, err
	}
	defer qc.close()
	count := fmt.Sprintf("QUERY %s COUNT %d", name, int64(ld.Points)*10+1)
	reply, _, err := qc.do(count, o.Stall)
	if err != nil {
		return qr, err
	}
	if want := fmt.Sprintf("200 [%d]", ld.Points); string(reply) != want {
		return qr, fmt.Errorf("%s: %q, want %q (is the series older than the server's --retention?)", count, reply, want)
	}
	qr.Samples = int64(ld.Points)
	timeIt := func(where string) (LatencySet, error) {
		var ds []time.Duration
		for i := -2; i < o.Queries; i++ { // two untimed warm-ups
			reply, took, err := qc.do(qr.Request, o.Stall)
			if err != nil {
				return LatencySet{}, err
			}
			if !bytes.HasPrefix(reply, []byte("200 [")) {
				return LatencySet{}, fmt.Errorf("%s: %.100q", qr.Request, reply)
			}
			qr.ReplyBytes = len(reply) + 1
			qr.Windows = bytes.Count(reply, []byte(", ")) + 1
			if i >= 0 {
				ds = append(ds, took)
			}
		}
		ls := summarize(ds)
		fmt.Fprintf(p, "query: %s from %s: median %.2f ms, p99 %.2f ms (%d windows)\n", qr.Request, where, ls.MedianMs, ls.P99Ms, qr.Windows)
		return ls, nil
	}
	if qr.Head, err = timeIt("the head"); err != nil {
		return qr, err
	}
	if o.HTTPAddr != "" {
		if _, err := flushServer(ctx, o.HTTPAddr, o.Stall); err != nil {
			return qr, err
		}
		if qr.Parts, err = timeIt("parts"); err != nil {
			return qr, err
		}
	}
	if min := ld.Points / 60; qr.Windows < min {
		return qr, fmt.Errorf("%s: %d windows, want at least %d", qr.Request, qr.Windows, min)
	}
	return qr, nil
}

// summarize returns the median, 99th percentile (nearest rank), min and
// max of ds.
func summarize(ds []time.Duration) LatencySet {
	if len(ds) == 0 {
		return LatencySet{}
	}
	slices.Sort(ds)
	rank := func(q float64) time.Duration {
		i := int(math.Ceil(q*float64(len(ds)))) - 1
		return ds[min(max(i, 0), len(ds)-1)]
	}
	var med time.Duration
	if n := len(ds); n%2 == 1 {
		med = ds[n/2]
	} else {
		med = (ds[n/2-1] + ds[n/2]) / 2
	}
	return LatencySet{N: len(ds), MedianMs: ms(med), P99Ms: ms(rank(0.99)), MinMs: ms(ds[0]), MaxMs: ms(ds[len(ds)-1])}
}

// queryConn sends one request at a time and reads its reply.
type queryConn struct {
	nc    net.Conn
	rr    *replyReader
	reply []byte
}

func dialQuery(ctx context.Context, addr string) (*queryConn, error) {
	nc, err := dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	return &queryConn{nc: nc, rr: newReplyReader(nc)}, nil
}

func (q *queryConn) close() { q.nc.Close() }

// do sends req and returns its reply line, valid until the next call, and
// the time from the write to the read that completed the reply.
func (q *queryConn) do(req string, timeout time.Duration) ([]byte, time.Duration, error) {
	q.nc.SetDeadline(time.Now().Add(timeout))
	start := time.Now()
	if _, err := q.nc.Write([]byte(req + "\n")); err != nil {
		return nil, 0, fmt.Errorf("%s: %w", req, err)
	}
	got := false
	for !got {
		err := q.rr.read(func(line []byte) {
			q.reply = append(q.reply[:0], line...)
			got = true
		})
		if got {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", req, err)
		}
	}
	return q.reply, q.rr.at.Sub(start), nil
}

// measureDisk fills res.Disk from the server's part bytes after the
// ingest's flush, and again once background merges settled.
func measureDisk(ctx context.Context, o BenchOptions, p io.Writer, before, after serverMetrics, took time.Duration, res *BenchResult) error {
	dr := &DiskResult{
		FlushSeconds: took.Seconds(),
		Bytes:        int64(after.diskBytes - before.diskBytes),
		Samples:      int64(after.appended - before.appended),
		WALBytes:     int64(after.walBytes),
		Parts:        int(after.parts),
	}
	if dr.Samples > 0 {
		dr.BytesPerSample = float64(dr.Bytes) / float64(dr.Samples)
	}
	res.Disk = dr
	fmt.Fprintf(p, "disk: flushed in %.2fs; %d bytes for %d samples in %d parts: %.3f bytes/sample\n",
		took.Seconds(), dr.Bytes, dr.Samples, dr.Parts, dr.BytesPerSample)
	settled, waited, err := settle(ctx, o.HTTPAddr, after, o.Stall)
	if err != nil {
		return err
	}
	dr.SettledBytes = int64(settled.diskBytes - before.diskBytes)
	dr.SettledParts = int(settled.parts)
	dr.SettleSeconds = waited.Seconds()
	if dr.Samples > 0 {
		dr.SettledBytesPerSample = float64(dr.SettledBytes) / float64(dr.Samples)
	}
	fmt.Fprintf(p, "disk: after %.1fs of background merges: %d bytes in %d parts: %.3f bytes/sample\n",
		dr.SettleSeconds, dr.SettledBytes, dr.SettledParts, dr.SettledBytesPerSample)
	return nil
}
