// Package lowpriority runs background work (a policy version's reading,
// compiling and checking) so that the decisions served beside it keep their
// latency.
//
// The Go scheduler gives every goroutine the same share: a CPU-bound
// goroutine keeps its P for up to 10 ms before it is preempted, and a
// goroutine that returns from a system call waits for a P like any other.
// On a replica with one or two CPUs, an activation (hundreds of
// milliseconds of compiling) thus holds up every decision that writes to
// the store — each fsync'ed commit is a few system calls, each return a
// wait of up to 10 ms — until DPoP proofs and refresh tokens miss their
// deadline. Run gives the work a P of its own, one more than GOMAXPROCS for
// as long as it runs, and an OS thread of its own at the lowest priority
// but one (nice 19 would let the thread wait so long for a CPU that a
// garbage collection's stop-the-world waits with it), so that the
// operating system, not the Go scheduler, shares the CPUs: the decisions
// first, the background work with what is left.
package lowpriority

import (
	"os"
	"runtime"
	"sync"
)

// Nice is the niceness of the thread background work runs on: its weight
// is about a tenth of a normal thread's, so it gets about a tenth of a
// CPU that decisions keep busy, and all of an idle one.
const Nice = 10

// mu makes background work run one at a time, each with the one extra P.
var mu sync.Mutex

// Run calls fn on an OS thread of its own at low priority, with one more P
// than GOMAXPROCS while it runs, and returns when fn has. A panic in fn is
// raised again in the caller.
func Run(fn func()) {
	mu.Lock()
	defer mu.Unlock()
	restore := addP()
	defer restore()
	var (
		done      = make(chan struct{})
		recovered any
		panicked  = true
	)
	go func() {
		// The thread is never unlocked: it ends with this goroutine, and
		// its low priority with it.
		runtime.LockOSThread()
		defer close(done)
		defer func() {
			if panicked {
				recovered = recover()
			}
		}()
		lowerThread()
		fn()
		panicked = false
	}()
	<-done
	if panicked {
		panic(recovered)
	}
}

// addP raises GOMAXPROCS by one and returns what puts it back: the value it
// had when the GOMAXPROCS environment variable set it, otherwise the
// runtime's default, which follows the CPUs and cgroup limits as they
// change.
func addP() func() {
	n := runtime.GOMAXPROCS(0)
	runtime.GOMAXPROCS(n + 1)
	return func() {
		if os.Getenv("GOMAXPROCS") != "" {
			runtime.GOMAXPROCS(n)
			return
		}
		runtime.SetDefaultGOMAXPROCS()
	}
}
