package loadgen

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReplyReader(t *testing.T) {
	in := "201 Metric Inserted\r\n201 Metric Inserted\n200 [" + strings.Repeat("1.0, ", 200000) + "2.0]\n503 busy\n"
	for _, name := range []string{"whole", "one byte at a time"} {
		t.Run(name, func(t *testing.T) {
			var r io.Reader = strings.NewReader(in)
			if name != "whole" {
				r = iotest.OneByteReader(r)
			}
			rr := newReplyReader(r)
			var lines []string
			var err error
			for err == nil {
				err = rr.read(func(line []byte) { lines = append(lines, string(line)) })
			}
			if err != io.EOF {
				t.Fatal(err)
			}
			if len(lines) != 4 || lines[0] != "201 Metric Inserted" || lines[1] != lines[0] ||
				len(lines[2]) != len("200 [")+200000*5+4 || lines[3] != "503 busy" {
				t.Fatalf("got %d lines: %.60q", len(lines), lines)
			}
		})
	}
}
