package client

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// outageBackend is a server the outage scenario can kill and restart.
type outageBackend struct {
	addr    string
	kill    func() // abrupt: no goodbye, unacknowledged work may or may not be kept
	restart func() // on the same address and data
}

// produced records, per series, the points a client collected.
type produced struct {
	mu  sync.Mutex
	pts map[string]map[int64]float64 // name -> ts (ms) -> value
}

func (p *produced) add(pts []point) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, pt := range pts {
		m := p.pts[pt.name]
		if m == nil {
			m = map[int64]float64{}
			p.pts[pt.name] = m
		}
		if _, dup := m[pt.ts]; dup {
			panic(fmt.Sprintf("two points of %s at %d", pt.name, pt.ts))
		}
		m[pt.ts] = pt.v
	}
}

// outageResult is what the scenario produced and what delivery cost.
type outageResult struct {
	produced map[string]map[int64]float64
	stats    Stats
	proxy    struct{ forwarded, replied, cuts, delays int }
}

// runOutage drives a client through a faulty proxy to backend with a clock
// 20 times faster than real time and a Period of 1s of that clock, so that
// each point has its own whole second: updates for 6 s (120 intervals),
// or longer until enough faults were seen, a SIGKILL of the backend after
// 1.5 s and a restart 1.5 s later, faults all along, then a healthy Flush
// and Close.
func runOutage(t *testing.T, be outageBackend, metrics int) outageResult {
	t.Helper()
	proxy := newFaultyProxy(t, be.addr, 700*time.Millisecond)
	proxy.setFaults(true)
	rec := &produced{pts: map[string]map[int64]float64{}}
	start := time.Now()
	clk := fastClock{base: start.Add(-time.Hour).Truncate(time.Second), start: start, speed: 20}
	c, err := newClient(&Options{
		Addr:         proxy.addr(),
		Period:       time.Second,
		MaxBackoff:   4 * time.Second, // of the fast clock: 200 ms
		DialTimeout:  time.Second,
		WriteTimeout: time.Second,
		ReadTimeout:  500 * time.Millisecond,
		MaxInFlight:  64,
		Logger:       quietLogger,
	}, clk, rec.add)
	if err != nil {
		t.Fatal(err)
	}
	ctrs := make([]*Counter, metrics)
	for i := range ctrs {
		ctrs[i] = c.Counter("outage.m" + strconv.Itoa(i))
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			for j, ctr := range ctrs {
				ctr.Add(float64(1 + (i+j)%7))
			}
		}
	}()
	time.Sleep(1500 * time.Millisecond)
	be.kill()
	time.Sleep(1500 * time.Millisecond)
	be.restart()
	// At least 3 s more, and until the faults below were exercised: how
	// many lines pass through the proxy in a given time, and so how many
	// faults it injects, depends on how busy the machine is. The deadline
	// only bounds a scenario that cannot get there.
	restarted := time.Now()
	for deadline := restarted.Add(time.Minute); time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		if time.Since(restarted) >= 3*time.Second && faultsExercised(c.Stats(), proxy) {
			break
		}
	}
	close(stop)
	wg.Wait()

	proxy.setFaults(false)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Close(ctx); err != nil {
		t.Fatalf("close: %v (stats %+v)", err, c.Stats())
	}
	var r outageResult
	r.produced = rec.pts
	r.stats = c.Stats()
	r.proxy.forwarded, r.proxy.replied, r.proxy.cuts, r.proxy.delays = proxy.stats()
	t.Logf("client: %+v", r.stats)
	t.Logf("proxy: %+v", r.proxy)
	if !faultsExercised(r.stats, proxy) {
		t.Errorf("the scenario did not exercise faults: %d failed attempts, %d cuts, %d delays",
			r.stats.Failures, r.proxy.cuts, r.proxy.delays)
	}
	if r.stats.Held != 0 || r.stats.Dropped != 0 || r.stats.Rejected != 0 {
		t.Errorf("stats %+v: want nothing held, dropped or rejected", r.stats)
	}
	return r
}

// faultsExercised reports whether an outage scenario has seen enough
// faults to mean something: failed attempts, cuts and delayed replies.
func faultsExercised(st Stats, p *faultyProxy) bool {
	_, _, cuts, delays := p.stats()
	return st.Failures >= 3 && cuts >= 2 && delays >= 10
}

// checkStored compares what the server stored, as per-second window
// counts and sums per series (oldest first, empty windows left out), with
// what the client produced: every point stored, duplicates only within
// the bound of unanswered requests.
func checkStored(t *testing.T, r outageResult, stored func(name string) (counts, sums []float64)) {
	t.Helper()
	var points, dups int
	for name, byTS := range r.produced {
		tss := make([]int64, 0, len(byTS))
		for ts := range byTS {
			tss = append(tss, ts)
		}
		slices.Sort(tss)
		counts, sums := stored(name)
		if len(counts) != len(tss) || len(sums) != len(tss) {
			t.Errorf("%s: server holds %d windows (%d sums), client produced %d points",
				name, len(counts), len(sums), len(tss))
			continue
		}
		for i, ts := range tss {
			v := byTS[ts]
			if counts[i] < 1 || sums[i] != counts[i]*v {
				t.Errorf("%s at %d: server has %v samples summing to %v, want copies of %v",
					name, ts, counts[i], sums[i], v)
			}
			dups += int(counts[i]) - 1
		}
		points += len(tss)
	}
	t.Logf("%d series, %d points produced, %d stored twice, %d unanswered requests (bound)",
		len(r.produced), points, dups, r.stats.Unanswered)
	if points == 0 {
		t.Fatal("no points produced")
	}
	if uint64(dups) > r.stats.Unanswered {
		t.Errorf("%d points stored twice, more than the %d requests left unanswered", dups, r.stats.Unanswered)
	}
	// The server stores only what the proxy forwarded, and the client
	// read one acknowledgement per point, so the copies beyond the first
	// are at most the requests forwarded and not acknowledged to the
	// client. (The proxy's count of replies written is no bound: a reply
	// written after the client gave up on its connection is not read.)
	if notAcked := r.proxy.forwarded - int(r.stats.Delivered); dups > notAcked {
		t.Errorf("%d points stored twice, more than the %d requests forwarded and not acknowledged to the client", dups, notAcked)
	}
}

// TestOutageFakeServer runs the outage scenario against the in-test fake
// server, which acknowledges after recording: a line recorded and then cut
// is stored twice when resent.
func TestOutageFakeServer(t *testing.T) {
	if testing.Short() {
		t.Skip("6 s scenario")
	}
	srv := newFakeServer(t)
	r := runOutage(t, outageBackend{addr: srv.addr, kill: srv.stop, restart: func() { srv.start(srv.addr) }}, 10)
	checkStored(t, r, func(name string) (counts, sums []float64) {
		byTS := map[int64][]float64{}
		for _, l := range srv.lines() {
			n, v, ts := parseLog(t, l)
			if n == name {
				ms := int64(ts * 1000)
				byTS[ms] = append(byTS[ms], v)
			}
		}
		tss := make([]int64, 0, len(byTS))
		for ts := range byTS {
			tss = append(tss, ts)
		}
		slices.Sort(tss)
		for _, ts := range tss {
			var sum float64
			for _, v := range byTS[ts] {
				sum += v
			}
			counts = append(counts, float64(len(byTS[ts])))
			sums = append(sums, sum)
		}
		return counts, sums
	})
}
