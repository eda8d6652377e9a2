package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unsafe"
)

// Bounds of a CPU list (the --server-cpus and --generator-cpus values).
const (
	maxCPUListLen = 256
	maxCPU        = 1023
)

// cpuSet is a set of CPU numbers, sorted, without repeats.
type cpuSet []int

// parseCPUList reads a CPU list as taskset -c and /sys/devices/system/cpu
// write them: comma-separated numbers and ranges ("0", "0-3", "0,2,4-5").
// The empty list is the empty set (no pinning).
func parseCPUList(s string) (cpuSet, error) {
	if len(s) > maxCPUListLen {
		return nil, fmt.Errorf("CPU list longer than %d characters", maxCPUListLen)
	}
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var set cpuSet
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := cpuNumber(lo)
		if err != nil {
			return nil, fmt.Errorf("CPU list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = cpuNumber(hi); err != nil {
				return nil, fmt.Errorf("CPU list %q: %w", s, err)
			}
			if b < a {
				return nil, fmt.Errorf("CPU list %q: range %s goes down", s, part)
			}
		}
		for c := a; c <= b; c++ {
			set = append(set, c)
		}
	}
	slices.Sort(set)
	return slices.Compact(set), nil
}

// cpuNumber reads one CPU number, 0..maxCPU, digits only.
func cpuNumber(s string) (int, error) {
	if s == "" || len(s) > 4 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a CPU number", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > maxCPU {
		return 0, fmt.Errorf("CPU %q is above %d", s, maxCPU)
	}
	return n, nil
}

// String writes the set as a CPU list, ranges folded ("0-3,6").
func (c cpuSet) String() string {
	var b strings.Builder
	for i := 0; i < len(c); {
		j := i
		for j+1 < len(c) && c[j+1] == c[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(c[i]))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(c[j]))
		}
		i = j + 1
	}
	return b.String()
}

// mask is the set as a sched_setaffinity mask.
func (c cpuSet) mask() [(maxCPU + 1) / 64]uint64 {
	var m [(maxCPU + 1) / 64]uint64
	for _, n := range c {
		m[n/64] |= 1 << (n % 64)
	}
	return m
}

// pinProcess pins every thread of this process to set (threads started
// later inherit the mask of the thread that starts them).
func pinProcess(set cpuSet) error {
	if len(set) == 0 {
		return nil
	}
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return err
	}
	m := set.mask()
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		_, _, errno := syscall.RawSyscall(syscall.SYS_SCHED_SETAFFINITY, uintptr(tid), unsafe.Sizeof(m), uintptr(unsafe.Pointer(&m)))
		if errno != 0 && errno != syscall.ESRCH {
			return fmt.Errorf("pinning the load generator to CPUs %s: %w", set, errno)
		}
	}
	return nil
}

// pinned returns the command that runs bin with args on the CPUs of set
// (taskset), or bin itself when set is empty.
func pinned(set cpuSet, bin string, args ...string) (*exec.Cmd, error) {
	if len(set) == 0 {
		return exec.Command(bin, args...), nil
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return nil, errors.New("--server-cpus needs taskset (util-linux)")
	}
	return exec.Command(taskset, append([]string{"-c", set.String(), bin}, args...)...), nil
}

// pinning describes the pinning of a run for the table's header.
func pinning(server, generator cpuSet) string {
	where := func(c cpuSet) string {
		if len(c) == 0 {
			return "any CPU"
		}
		if len(c) == 1 {
			return "CPU " + c.String()
		}
		return "CPUs " + c.String()
	}
	if len(server) == 0 && len(generator) == 0 {
		return "not pinned"
	}
	return "servers on " + where(server) + ", load generator on " + where(generator)
}
