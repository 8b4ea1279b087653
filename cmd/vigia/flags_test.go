package main

import "testing"

func TestBytesFlag(t *testing.T) {
	for in, want := range map[string]int64{
		"512MiB": 512 << 20, "1GiB": 1 << 30, "65536": 65536, "64KiB": 64 << 10, "3B": 3, "0": 0, "2TiB": 2 << 40,
	} {
		var b bytesFlag
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, b, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "1.5GiB", "-1", "1 GiB", "1gb", "9999999999TiB", "0x10"} {
		var b bytesFlag
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) = %d, want an error", in, b)
		}
	}
	for n, want := range map[int64]string{512 << 20: "512MiB", 1 << 30: "1GiB", 1536 << 20: "1536MiB", 1000: "1000", 0: "0", 3 << 40: "3TiB"} {
		b := bytesFlag(n)
		if got := b.String(); got != want {
			t.Errorf("String of %d = %q, want %q", n, got, want)
		}
	}
}

// FuzzBytesFlag: what Set takes, String writes back as the same size.
func FuzzBytesFlag(f *testing.F) {
	for _, s := range []string{"512MiB", "1GiB", "65536", "64KiB", "1.5GiB", "-1", "9223372036854775807", "8388607TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var b bytesFlag
		if b.Set(s) != nil {
			return
		}
		if b < 0 {
			t.Fatalf("Set(%q) = %d", s, b)
		}
		var again bytesFlag
		if err := again.Set(b.String()); err != nil || again != b {
			t.Fatalf("Set(%q) = %d; String %q reads back as %d, %v", s, b, b.String(), again, err)
		}
	})
}
