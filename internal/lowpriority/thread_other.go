//go:build !linux

package lowpriority

import "errors"

// lowerThread does nothing where threads have no niceness of their own:
// the work still has a P of its own.
func lowerThread() {}

func threadNice() (int, error) { return 0, errors.New("no per-thread niceness") }
