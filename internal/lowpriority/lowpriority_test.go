package lowpriority

import (
	"runtime"
	"testing"
)

func TestRunGivesTheWorkALowPriorityThreadAndAPOfItsOwn(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	var procs, nice int
	var niceErr error
	Run(func() {
		procs = runtime.GOMAXPROCS(0)
		nice, niceErr = threadNice()
	})
	if procs != before+1 {
		t.Errorf("GOMAXPROCS while the work ran = %d, want %d", procs, before+1)
	}
	if after := runtime.GOMAXPROCS(0); after != before {
		t.Errorf("GOMAXPROCS after = %d, want %d again", after, before)
	}
	if runtime.GOOS == "linux" {
		if niceErr != nil || nice != Nice {
			t.Errorf("the work's thread has niceness %d (%v), want %d", nice, niceErr, Nice)
		}
	}
}

func TestRunLeavesTheCallersThreadAlone(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("threads have no niceness of their own here")
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	before, err := threadNice()
	if err != nil {
		t.Fatal(err)
	}
	Run(func() {})
	if after, _ := threadNice(); after != before {
		t.Errorf("the caller's thread went from niceness %d to %d", before, after)
	}
}

func TestRunRaisesTheWorksPanicInTheCaller(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	defer func() {
		if got := recover(); got != "broken" {
			t.Errorf("recovered %v, want the work's panic", got)
		}
		if after := runtime.GOMAXPROCS(0); after != before {
			t.Errorf("GOMAXPROCS after a panic = %d, want %d", after, before)
		}
	}()
	Run(func() { panic("broken") })
}

func TestRunIsOneAtATime(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	seen := make(chan int, 8)
	done := make(chan struct{})
	for range 8 {
		go func() {
			Run(func() { seen <- runtime.GOMAXPROCS(0) })
			done <- struct{}{}
		}()
	}
	for range 8 {
		<-done
	}
	close(seen)
	for p := range seen {
		if p != before+1 {
			t.Errorf("GOMAXPROCS %d while work ran beside other work, want %d", p, before+1)
		}
	}
}
