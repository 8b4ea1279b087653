package loadgen

import (
	"fmt"
	"io"
	"strconv"
)

// WriteReport writes r for people to read.
func (r *BenchResult) WriteReport(w io.Writer) error {
	pr := &printer{w: w}
	m := r.Machine
	pr.f("vigia bench: %d series x %d points = %d samples (seed %d), %d connections\n",
		r.Series, r.Points, int64(r.Series)*int64(r.Points), r.Seed, r.Conns)
	pr.f("machine:     %d cores (%s), %s\n", m.Cores, m.CPU, m.OS)
	in := r.Ingest
	how := "requests generated before the clock started"
	if r.Live {
		how = "requests generated while sending"
	}
	pr.f("ingest:      %s samples/s acknowledged (%d in %.2f s, %s of requests; %s)\n",
		grouped(in.SamplesPerSec), in.Samples, in.Seconds, mb(in.RequestBytes), how)
	if in.Commits > 0 {
		pr.f("             %d group commits, %.0f samples per commit\n", in.Commits, in.SamplesPerCommit)
	}
	pr.cpu(in.CPU, in.ServerNsPerSample, m.Cores)
	if d := r.Disk; d != nil {
		pr.f("disk:        %.3f bytes/sample after a flush (%s for %d samples in %d parts; flush took %.2f s; WAL left %s)\n",
			d.BytesPerSample, mb(d.Bytes), d.Samples, d.Parts, d.FlushSeconds, mb(d.WALBytes))
		if d.SettledParts != d.Parts || d.SettledBytes != d.Bytes {
			pr.f("             %.3f bytes/sample once background merges settled %.1f s later (%s in %d parts)\n",
				d.SettledBytesPerSample, d.SettleSeconds, mb(d.SettledBytes), d.SettledParts)
		}
	}
	if p := r.Paced; p != nil {
		pr.f("LOG latency: p50 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms at %s LOG/s (target %s, %.2f of the ingest rate) for %.1f s\n",
			p.P50Ms, p.P99Ms, p.P999Ms, p.MaxMs, grouped(p.SentPerSec), grouped(p.TargetPerSec),
			p.TargetPerSec/max(in.SamplesPerSec, 1), p.Seconds)
		pr.f("             from each burst's scheduled time (every millisecond); from its write instead: p50 %.3f ms, p99 %.3f ms\n",
			p.FromWriteP50Ms, p.FromWriteP99Ms)
		if b, q := p.Busy, p.Quiet; b != nil && q != nil {
			pr.f("             seconds in which the server flushed or merged: %s; the others: %s\n", b, q)
		}
		if p.Commits > 0 {
			pr.f("             %d group commits, %.0f samples per commit\n", p.Commits, p.SamplesPerCommit)
		}
		pr.cpu(p.CPU, p.ServerNsPerSample, m.Cores)
	}
	if q := r.Query; q != nil {
		pr.f("QUERY:       %s over %d samples (%d windows, %s reply), %d times each:\n",
			q.Request, q.Samples, q.Windows, mb(int64(q.ReplyBytes)), q.Head.N)
		pr.f("               from the head: median %.2f ms, p99 %.2f ms (min %.2f, max %.2f)\n",
			q.Head.MedianMs, q.Head.P99Ms, q.Head.MinMs, q.Head.MaxMs)
		if q.Parts.N > 0 {
			pr.f("               from parts:    median %.2f ms, p99 %.2f ms (min %.2f, max %.2f)\n",
				q.Parts.MedianMs, q.Parts.P99Ms, q.Parts.MinMs, q.Parts.MaxMs)
		}
		pr.f("             (loading the series on one connection took %.2f s)\n", q.LoadSeconds)
	}
	if mem := r.Memory; mem != nil {
		pr.f("server RSS:  peak %s after ingest and flush, peak %s at the end (VmHWM); %s now\n",
			mb(mem.PeakAfterIngest), mb(mem.Peak), mb(mem.Current))
	}
	return pr.err
}

// cpu prints where the CPU time of a phase went.
func (p *printer) cpu(u *CPUUse, serverNs float64, cores int) {
	if u == nil {
		return
	}
	p.f("             CPU during the phase: server %.2f s", u.Server)
	if serverNs > 0 {
		p.f(" (%.0f ns/sample)", serverNs)
	}
	others := "other processes"
	if u.OthersWithIRQ {
		others = "other processes (with the interrupts that hit them or an idle core)"
	}
	p.f(", this sender %.2f s, interrupts %.2f s, %s %.2f s, hypervisor steal %.2f s, of %.2f s of %d cores\n",
		u.Client, u.IRQ, others, u.Others, u.Steal, u.Machine, cores)
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) f(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}

// mb prints n bytes in megabytes (10^6).
func mb(n int64) string {
	if n < 1e6 {
		return strconv.FormatFloat(float64(n)/1e3, 'f', 1, 64) + " kB"
	}
	return strconv.FormatFloat(float64(n)/1e6, 'f', 1, 64) + " MB"
}

// grouped prints v rounded, with thousands separated by commas.
func grouped(v float64) string {
	s := strconv.FormatInt(int64(v+0.5), 10)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// String says how many seconds s covers and their latency.
func (s *PacedSplit) String() string {
	if s.Seconds == 0 {
		return "none"
	}
	return fmt.Sprintf("%d, p50 %.3f ms, p99 %.3f ms", s.Seconds, s.P50Ms, s.P99Ms)
}
