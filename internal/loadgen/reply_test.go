package loadgen

import (
	"bytes"
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

// FuzzReplyReader checks that, however the input is cut into reads, the
// reader yields exactly its complete lines, without "\n" or "\r\n".
func FuzzReplyReader(f *testing.F) {
	f.Add([]byte("201 Metric Inserted\n201 Metric Inserted\r\n200 [1.0, 2.5]\n503 x"), uint8(3))
	f.Add([]byte("\n\n\r\n"), uint8(1))
	f.Add([]byte("no newline at all"), uint8(0))
	f.Fuzz(func(t *testing.T, in []byte, cut uint8) {
		var want []string
		rest := in
		for {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 {
				break
			}
			want = append(want, string(bytes.TrimSuffix(rest[:i], []byte("\r"))))
			rest = rest[i+1:]
		}
		var r io.Reader = bytes.NewReader(in)
		if cut > 0 {
			r = &chunkReader{b: in, n: int(cut)}
		}
		rr := newReplyReader(r)
		rr.buf = rr.buf[:16] // exercise the growth of the buffer
		var got []string
		var err error
		for err == nil {
			err = rr.read(func(line []byte) { got = append(got, string(line)) })
		}
		if err != io.EOF {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d lines, want %d", len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("line %d: %q, want %q", i, got[i], want[i])
			}
		}
	})
}

// chunkReader returns at most n bytes per Read.
type chunkReader struct {
	b []byte
	n int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), c.n)], c.b)
	c.b = c.b[k:]
	return k, nil
}
