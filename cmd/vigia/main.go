// Command vigia is the vigia monitoring server and its tools, in one
// binary with subcommands. Run "vigia help" for the list.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"strconv"
	"strings"

	"github.com/vigia-mon/vigia/internal/native/wire"
)

// command is one subcommand. run gets the arguments after its name and
// returns the process's exit code.
type command struct {
	name, summary string
	run           func(args []string) int
}

var commands []command

func init() {
	commands = []command{
		{"server", "run the metrics and alert server", runServer},
		{"client", "send native protocol commands (interactive, or one command from the arguments)", runClient},
		{"load", "run test clients that insert metrics constantly", runLoad},
		{"bench", "measure a running server: ingest rate, LOG latency, disk bytes per sample, QUERY latency", runBench},
		{"help", "show this help", func([]string) int { usage(os.Stdout); return 0 }},
	}
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "vigia: a monitoring server that stores metrics, answers windowed queries and raises alerts.\n\nUsage:\n  vigia <command> [flags]\n\nCommands:\n")
	for _, c := range commands {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun \"vigia <command> --help\" for a command's flags.\n")
}

func main() {
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	name := os.Args[1]
	switch name {
	case "-h", "-help", "--help":
		usage(os.Stdout)
		return
	}
	for _, c := range commands {
		if c.name == name {
			os.Exit(c.run(os.Args[2:]))
		}
	}
	fmt.Fprintf(os.Stderr, "vigia: unknown command %q\n\n", name)
	usage(os.Stderr)
	os.Exit(2)
}

// newFlagSet returns a flag set for a subcommand whose --help prints the
// synopsis and the flags.
func newFlagSet(name, synopsis string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: vigia %s\n\n", synopsis)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args and returns the exit code to return at once, or
// -1 to go on. --help prints the usage on standard output and returns 0; a
// bad flag prints one line on standard error and returns 2.
func parseFlags(fs *flag.FlagSet, args []string) int {
	fs.SetOutput(io.Discard) // the flag package would print the whole usage after an error
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(os.Stdout)
		fs.Usage()
		return 0
	case err != nil:
		fmt.Fprintf(os.Stderr, "vigia %s: %v (see vigia %s --help)\n", fs.Name(), err, fs.Name())
		return 2
	}
	fs.SetOutput(os.Stderr)
	return -1
}

// checkPrefix returns an error naming flag when prefix cannot start a
// metric id: empty, or holding whitespace or control characters. name is
// the longest id the command makes with it, checked for the id's length.
func checkPrefix(flag, prefix, name string) error {
	switch {
	case prefix == "":
		return fmt.Errorf("%s must not be empty", flag)
	case !wire.ValidID([]byte(name)):
		return fmt.Errorf("%s %q makes metric ids such as %q, which the server refuses: an id has at most %d bytes and no whitespace or control characters", flag, prefix, name, wire.MaxIDLen)
	}
	return nil
}

// logFlags adds --log-level and --log-format and returns a function making
// the logger they describe.
func logFlags(fs *flag.FlagSet) func() (*slog.Logger, error) {
	level := fs.String("log-level", "info", "log level: debug, info, warn or error")
	format := fs.String("log-format", "text", "log format: text or json")
	return func() (*slog.Logger, error) {
		var lv slog.Level
		if err := lv.UnmarshalText([]byte(*level)); err != nil {
			return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", *level)
		}
		ho := &slog.HandlerOptions{Level: lv}
		switch strings.ToLower(*format) {
		case "text":
			return slog.New(slog.NewTextHandler(os.Stderr, ho)), nil
		case "json":
			return slog.New(slog.NewJSONHandler(os.Stderr, ho)), nil
		}
		return nil, fmt.Errorf("--log-format %q: want text or json", *format)
	}
}

// stringsFlag is a repeatable string flag.
type stringsFlag []string

func (s *stringsFlag) String() string     { return strings.Join(*s, ",") }
func (s *stringsFlag) Set(v string) error { *s = append(*s, v); return nil }

// bytesFlag is a size in bytes, written as a whole number with an optional
// unit: 512MiB, 1GiB, 65536, 64KiB.
type bytesFlag int64

var byteUnits = []struct {
	suffix string
	n      int64
}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"B", 1}}

// String writes the size in the largest unit that divides it.
func (b *bytesFlag) String() string {
	n := int64(*b)
	for i := 3; i >= 0 && n != 0; i-- {
		if u := byteUnits[i]; n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (b *bytesFlag) Set(v string) error {
	num, mult := v, int64(1)
	for _, u := range byteUnits {
		if s, ok := strings.CutSuffix(v, u.suffix); ok {
			num, mult = s, u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return fmt.Errorf("want a size such as 512MiB, 1GiB or a number of bytes")
	}
	*b = bytesFlag(n * mult)
	return nil
}
