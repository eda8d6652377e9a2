// Package cpuset reads CPU lists and pins processes to them, so that a
// load generator and the server it measures do not share cores.
package cpuset

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

// Bounds of a CPU list.
const (
	MaxListLen = 256
	MaxCPU     = 1023
)

// Set is a set of CPU numbers, sorted, without repeats.
type Set []int

// Parse reads a CPU list as taskset -c and /sys/devices/system/cpu
// write them: comma-separated numbers and ranges ("0", "0-3", "0,2,4-5").
// The empty list is the empty set (no pinning).
func Parse(s string) (Set, error) {
	if len(s) > MaxListLen {
		return nil, fmt.Errorf("CPU list longer than %d characters", MaxListLen)
	}
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var set Set
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

// cpuNumber reads one CPU number, 0..MaxCPU, digits only.
func cpuNumber(s string) (int, error) {
	if s == "" || len(s) > 4 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("%q is not a CPU number", s)
	}
	n, err := strconv.Atoi(s)
	if err != nil || n > MaxCPU {
		return 0, fmt.Errorf("CPU %q is above %d", s, MaxCPU)
	}
	return n, nil
}

// String writes the set as a CPU list, ranges folded ("0-3,6").
func (c Set) String() string {
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
func (c Set) mask() [(MaxCPU + 1) / 64]uint64 {
	var m [(MaxCPU + 1) / 64]uint64
	for _, n := range c {
		m[n/64] |= 1 << (n % 64)
	}
	return m
}

// PinProcess pins every thread of this process to set (threads started
// later inherit the mask of the thread that starts them).
func PinProcess(set Set) error {
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
			return fmt.Errorf("pinning this process to CPUs %s: %w", set, errno)
		}
	}
	return nil
}

// Command returns the command that runs bin with args on the CPUs of set
// (taskset), or bin itself when set is empty.
func Command(set Set, bin string, args ...string) (*exec.Cmd, error) {
	if len(set) == 0 {
		return exec.Command(bin, args...), nil
	}
	taskset, err := exec.LookPath("taskset")
	if err != nil {
		return nil, errors.New("pinning a process needs taskset (util-linux)")
	}
	return exec.Command(taskset, append([]string{"-c", set.String(), bin}, args...)...), nil
}

// Where says where a process pinned to c runs, for a report: "any CPU",
// "CPU 0" or "CPUs 0-3".
func (c Set) Where() string {
	switch len(c) {
	case 0:
		return "any CPU"
	case 1:
		return "CPU " + c.String()
	}
	return "CPUs " + c.String()
}
