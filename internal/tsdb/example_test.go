package tsdb_test

import (
	"fmt"
	"log"
	"os"

	"github.com/vigia-mon/vigia/internal/tsdb"
)

func Example() {
	dir, _ := os.MkdirTemp("", "tsdb-example")
	defer os.RemoveAll(dir)
	db, err := tsdb.Open(dir, nil) // nil: default options
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()

	ref, err := db.GetOrCreate([]byte("cpu.load"), []tsdb.Label{{Name: "host", Value: "a"}})
	if err != nil {
		log.Fatal(err)
	}
	now := int64(1_900_000_000_000) // unix ms
	// Append returns once the samples are fsync'd in the WAL.
	if err := db.Append([]tsdb.Sample{{Ref: ref, T: now, V: 0.5}, {Ref: ref, T: now, V: 0.75}}); err != nil {
		log.Fatal(err)
	}
	db.Scan(ref, now, now+1, func(ts []int64, vs []float64) bool {
		fmt.Println(len(ts), "samples:", vs)
		return true
	})
	// Output: 2 samples: [0.5 0.75]
}
