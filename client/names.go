package client

import (
	"cmp"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen is the longest series name the native protocol accepts, in
// bytes.
const MaxNameLen = 255

// newNamer returns the function that turns a metric name as written in the
// program into the series name sent: Options.Prefix is prepended, then the
// built-in templates and the user's Substitutions are replaced, in one
// pass from left to right; where several templates match at the same
// place, the longest wins.
func newNamer(prefix string, subs Substitutions) func(string) string {
	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	short, _, _ := strings.Cut(host, ".")
	table := map[string]string{
		"%node%": host,
		"%host%": short,
		"%pid%":  strconv.Itoa(os.Getpid()),
	}
	for k, v := range subs {
		table[k] = v
	}
	// A Replacer tries its pairs in argument order, so at a place where
	// two templates match the longest must come first ("%node%" before a
	// user's "%node"). Sorting also keeps the result independent of map
	// order.
	keys := slices.Collect(maps.Keys(table))
	slices.SortFunc(keys, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
	})
	pairs := make([]string, 0, 2*len(keys))
	for _, k := range keys {
		if k != "" {
			pairs = append(pairs, k, table[k])
		}
	}
	r := strings.NewReplacer(pairs...)
	return func(name string) string { return r.Replace(prefix + name) }
}

// validName reports why name cannot be a series name, or nil: it must be
// 1 to 255 bytes of UTF-8 with no whitespace or control characters (C0,
// DEL or C1), as vigia's native protocol requires.
func validName(name string) error {
	if name == "" {
		return fmt.Errorf("metric name is empty")
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("metric name %.40q... is %d bytes, more than %d", name, len(name), MaxNameLen)
	}
	if !utf8.ValidString(name) {
		return fmt.Errorf("metric name %q is not valid UTF-8", name)
	}
	for i, r := range name {
		if r <= ' ' || r == 0x7f || (r >= 0x80 && r <= 0x9f) || unicode.IsSpace(r) {
			return fmt.Errorf("metric name %q holds whitespace or a control character at byte %d", name, i)
		}
	}
	return nil
}

// quantileSuffix names the series of quantile q: 0.5 is "p50", 0.99 is
// "p99", 0.999 is "p999", 1 is "p100".
func quantileSuffix(q float64) string {
	if q >= 1 {
		return "p100"
	}
	s := strconv.FormatFloat(q, 'f', -1, 64) // "0.5", "0.999"
	digits := strings.TrimPrefix(s, "0.")
	if len(digits) < 2 {
		digits += "0"
	}
	return "p" + digits
}
