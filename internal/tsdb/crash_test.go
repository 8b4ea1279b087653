package tsdb

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// crashChild is the body of the child process of TestCrashKill9: it
// appends batches of consecutive timestamps to one series forever,
// flushing now and then, and prints each acknowledged total.
func crashChild(dir string) {
	o := testOpts()
	o.FlushSamples = 3000 // background flushes, to be killed in the middle of
	db, err := Open(dir, o)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	ref, err := db.GetOrCreate([]byte("crash"), nil)
	if err != nil {
		fmt.Println("create:", err)
		os.Exit(2)
	}
	base, _ := strconv.ParseInt(os.Getenv("TSDB_CRASH_BASE"), 10, 64)
	n := int64(0)
	db.Scan(ref, 0, 1<<62, func(ts []int64, _ []float64) bool { n += int64(len(ts)); return true })
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		ss := make([]Sample, 100)
		for k := range ss {
			ss[k] = Sample{ref, base + (n+int64(k))*1000, float64(n + int64(k))}
		}
		if err := db.Append(ss); err != nil {
			fmt.Fprintln(w, "append:", err)
			w.Flush()
			os.Exit(2)
		}
		n += 100
		fmt.Fprintln(w, "acked", n)
		w.Flush()
		if i%37 == 36 {
			db.Flush()
		}
	}
}

// TestCrashKill9 runs a writer in a child process, kills it with SIGKILL
// while it appends and flushes, reopens the store and checks that every
// acknowledged sample is there exactly once; three times over.
func TestCrashKill9(t *testing.T) {
	if dir := os.Getenv("TSDB_CRASH_CHILD"); dir != "" {
		crashChild(dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	base := time.Now().UnixMilli()
	var acked int64
	for round := 0; round < 3; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKill9$")
		cmd.Env = append(os.Environ(), "TSDB_CRASH_CHILD="+dir, fmt.Sprint("TSDB_CRASH_BASE=", base))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		target := acked + 20000 + int64(round)*3000
		for sc.Scan() {
			line := sc.Text()
			if !strings.HasPrefix(line, "acked ") {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("child: %s", line)
			}
			acked, _ = strconv.ParseInt(strings.TrimPrefix(line, "acked "), 10, 64)
			if acked >= target {
				break
			}
		}
		cmd.Process.Kill() // SIGKILL
		cmd.Wait()

		db := openTest(t, dir, nil)
		ref, ok := db.Lookup([]byte("crash"), nil)
		if !ok {
			t.Fatal("series lost")
		}
		var n int64
		err = db.Scan(ref, 0, 1<<62, func(ts []int64, vs []float64) bool {
			for k, x := range ts {
				if x != base+n*1000 || vs[k] != float64(n) {
					t.Fatalf("round %d: sample %d is (%d, %v)", round, n, x-base, vs[k])
				}
				n++
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if n < acked {
			t.Fatalf("round %d: %d samples after SIGKILL, %d were acknowledged", round, n, acked)
		}
		t.Logf("round %d: acknowledged %d, recovered %d, %+v", round, acked, n, db.Stats())
		acked = n
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
