package client

import "time"

// clock is the time source of the interval schedule and of the retry
// delays; tests run it faster than real time.
type clock interface {
	Now() time.Time
	// After returns a channel that receives once d of this clock's time
	// has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }
