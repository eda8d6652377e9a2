package lowpriority

import "syscall"

// lowerThread sets the calling OS thread's niceness to Nice (Linux gives
// each thread its own). Lowering a priority needs no privilege; should it
// fail all the same, the work runs at the normal priority.
func lowerThread() {
	_ = syscall.Setpriority(syscall.PRIO_PROCESS, syscall.Gettid(), Nice)
}

// threadNice reports the calling thread's niceness.
func threadNice() (int, error) {
	// getpriority returns 20 - nice, so that it is never negative.
	p, err := syscall.Getpriority(syscall.PRIO_PROCESS, syscall.Gettid())
	return 20 - p, err
}
