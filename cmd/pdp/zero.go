package main

import "time"

// zeroIs passes a configured duration to a component whose options read
// zero as "the default": a configured 0 means zero, so it is passed as the
// component's own word for none.
func zeroIs(d, none time.Duration) time.Duration {
	if d == 0 {
		return none
	}
	return d
}
