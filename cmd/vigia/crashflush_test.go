package main

// An end-to-end durability test of a server that flushes its head into
// parts all the time: SIGKILL at random moments of a pipelined load lands
// in flushes, in merges of the parts they make and in the deletion of the
// WAL segments a flush covered, and every acknowledged sample must still
// be there, once, after each restart.

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The load of TestCrashDuringFlushes. Connection c sends its samples
// n = 0, 1, 2, ... (numbered across rounds) to its series
// crash.<c>.<seriesOf(n)>, K of them at a time, K new ones every
// crashGroup samples (so that series are created while flushes persist
// the series index), at crashT0 + n*crashStep ms, with the value
// n + code/100, where code names the connection and n%K: every stored
// sample tells which LOG line it came from.
const (
	crashConns    = 4
	crashSeries   = 3     // series written at a time per connection (K)
	crashGroup    = 2000  // samples per connection before K new series
	crashStep     = 10    // ms between a connection's samples
	crashRate     = 25000 // LOG lines per second and connection, at most
	crashMaxLines = 60000 // per connection and round: bounds the data
	crashChunk    = 100   // LOG lines per write
)

// crashT0 is 30 s before baseSec, a UTC midnight: the samples run into
// the next day's partition early in the first round.
var crashT0 = int64(baseSec-30) * 1000

// The states of a sample in crashConn.state.
const (
	crashUnsent   = iota
	crashMaybe    // sent, not acknowledged: may be stored or not
	crashRequired // acknowledged, or seen stored after a restart: must stay
)

// crashConn is one connection's share of the load, kept across rounds.
type crashConn struct {
	c     int
	next  int     // first sample of the next round
	state []uint8 // by sample number
}

// seriesOf returns the number of sample n's series.
func seriesOf(n int) int { return n/crashGroup*crashSeries + n%crashSeries }

func (cc *crashConn) id(k int) string { return fmt.Sprintf("crash.%d.%d", cc.c, k) }

// code is the part of sample n's value that names its connection and
// n%K: 1 to crashConns*crashSeries.
func (cc *crashConn) code(n int) int { return cc.c*crashSeries + n%crashSeries + 1 }

// value is sample n's value, as ParseFloat reads the "%d.%02d" sent.
func (cc *crashConn) value(n int) float64 {
	return float64(n*100+cc.code(n)) / 100
}

// crashRound is what one connection did in one round.
type crashRound struct {
	attempted atomic.Int64 // samples handed to Write, from the round's first
	acked     atomic.Int64 // 201s read, in order
	err       error        // a reply other than 201
}

// run pipelines LOGs of samples cc.next.. on a new connection until the
// server is killed, or crashMaxLines are sent and answered.
func (cc *crashConn) run(addr string, r *crashRound, total *atomic.Int64) {
	from, start := cc.next, time.Now()
	r.err = pipelineLOGs(addr, fmt.Sprintf("connection %d from sample %d", cc.c, from), func(b []byte, sent int) ([]byte, int) {
		if sent >= crashMaxLines {
			return b, 0
		}
		// Paced, so that the kill finds the load still running.
		time.Sleep(time.Until(start.Add(time.Duration(sent) * time.Second / crashRate)))
		for i := range crashChunk {
			n := from + sent + i
			b = fmt.Appendf(b, "LOG %s %d.%02d %s\n", cc.id(seriesOf(n)), n, cc.code(n), secs(crashT0+int64(n)*crashStep))
		}
		return b, crashChunk
	}, &r.attempted, &r.acked, total)
}

// endRound records what the round sent and what was acknowledged.
func (cc *crashConn) endRound(r *crashRound) {
	from, acked, attempted := cc.next, int(r.acked.Load()), int(r.attempted.Load())
	for len(cc.state) < from+attempted {
		cc.state = append(cc.state, crashUnsent)
	}
	for n := from; n < from+attempted; n++ {
		cc.state[n] = crashMaybe
		if n < from+acked {
			cc.state[n] = crashRequired
		}
	}
	cc.next = from + attempted
}

// check exports every series of cc over HTTP and checks that each
// required sample is stored once with its value, and that every stored
// sample is one that was sent, stored once. Sent samples seen stored
// become required: the server replayed them, so they are durable too.
// It returns the samples stored.
func (cc *crashConn) check(t *testing.T, s *testServer, when string) int {
	t.Helper()
	seen := make([]bool, len(cc.state))
	stored := 0
	for k := 0; k < (len(cc.state)+crashGroup-1)/crashGroup*crashSeries; k++ {
		code, body := httpGet(t, "http://"+s.http+"/api/v1/export?format=json&name="+url.QueryEscape(cc.id(k)))
		if code == 404 {
			continue // no sample of it was stored: checked below
		}
		if code != 200 {
			t.Fatalf("%s: export %s: %d %.200s", when, cc.id(k), code, body)
		}
		var pairs [][2]float64
		if err := json.Unmarshal([]byte(body), &pairs); err != nil {
			t.Fatalf("%s: export %s: %v: %.200s", when, cc.id(k), err, body)
		}
		bad := 0
		for _, p := range pairs {
			ms, v := int64(p[0]), p[1]
			n := int((ms - crashT0) / crashStep)
			switch {
			case ms < crashT0 || (ms-crashT0)%crashStep != 0 || seriesOf(n) != k ||
				n >= len(cc.state) || cc.state[n] == crashUnsent:
				t.Errorf("%s: %s holds [%d, %v], a sample never sent", when, cc.id(k), ms, v)
			case v != cc.value(n):
				t.Errorf("%s: %s: sample %d has value %v, want %v", when, cc.id(k), n, v, cc.value(n))
			case seen[n]:
				t.Errorf("%s: %s: sample %d (value %v) is stored twice", when, cc.id(k), n, v)
			default:
				seen[n] = true
				stored++
				continue
			}
			if bad++; bad >= 5 {
				t.Fatalf("%s: %s: more wrong samples left out", when, cc.id(k))
			}
		}
	}
	var missing []int
	for n, st := range cc.state {
		switch {
		case st == crashRequired && !seen[n]:
			missing = append(missing, n)
		case st == crashMaybe && seen[n]:
			cc.state[n] = crashRequired
		}
	}
	if len(missing) > 0 {
		t.Errorf("%s: connection %d: %d required samples missing (acknowledged, or stored before), first %v",
			when, cc.c, len(missing), missing[:min(len(missing), 10)])
	}
	return stored
}

// TestCrashDuringFlushes SIGKILLs a server that flushes its head every
// 100 ms, at a random moment while several connections pipeline LOGs,
// and restarts it on the same data dir, several times: after each restart
// every acknowledged sample is stored exactly once with its value, and
// nothing is stored that was not sent.
func TestCrashDuringFlushes(t *testing.T) {
	t.Parallel()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 7))
	s := startServer(t, t.TempDir(), "--flush-interval", "100ms")
	rounds := 5 + rng.IntN(4)
	var conns []*crashConn
	for c := range crashConns {
		conns = append(conns, &crashConn{c: c})
	}
	// check checks every connection's samples after the restart that
	// follows kill number kill.
	check := func(kill int) {
		t.Helper()
		start := time.Now()
		stored := 0
		for _, cc := range conns {
			stored += cc.check(t, s, fmt.Sprintf("after kill %d", kill))
		}
		t.Logf("restart %d: %d samples stored, all checked in %v", kill, stored, time.Since(start).Round(time.Millisecond))
		if t.Failed() {
			t.FailNow()
		}
	}
	for round := range rounds {
		if round > 0 {
			s.restart()
			check(round)
		}
		var total atomic.Int64
		var wg sync.WaitGroup
		rs := make([]*crashRound, len(conns))
		for i, cc := range conns {
			rs[i] = &crashRound{}
			wg.Go(func() { cc.run(s.native, rs[i], &total) })
		}
		// The moment of the kill: anywhere in 0.05 to 2 s of load (the
		// first flush, of the replayed samples, comes 0.1 s after the
		// start).
		time.Sleep(50*time.Millisecond + time.Duration(rng.Int64N(int64(1950*time.Millisecond))))
		s.alive()
		_, metrics := httpGet(t, "http://"+s.http+"/metrics")
		s.kill()
		wg.Wait()
		var acked, sent []int64
		for i, cc := range conns {
			if rs[i].err != nil {
				t.Fatal(rs[i].err)
			}
			acked = append(acked, rs[i].acked.Load())
			sent = append(sent, rs[i].attempted.Load())
			cc.endRound(rs[i])
		}
		t.Logf("round %d: killed after %d acknowledged, %v flushes, %v merges; per connection acknowledged %v, sent %v",
			round, total.Load(), metricValue(t, metrics, "vigia_tsdb_flushes_total"),
			metricValue(t, metrics, "vigia_tsdb_merges_total"), acked, sent)
	}
	s.restart()
	check(rounds)
}
