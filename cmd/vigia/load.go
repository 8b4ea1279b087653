package main

import (
	"fmt"
	"os"
)

func runLoad(args []string) int {
	fmt.Fprintln(os.Stderr, "vigia load: not built yet")
	return 1
}

func runBench(args []string) int {
	fmt.Fprintln(os.Stderr, "vigia bench: not built yet")
	return 1
}
