package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat:
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// parseCPUTicks returns utime + stime (fields 14 and 15) of a
// /proc/<pid>/stat line. The command name (field 2) may hold spaces and
// parentheses, so fields are counted after its last ')'.
func parseCPUTicks(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the command name", len(f))
	}
	utime, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("proc stat: utime: %w", err)
	}
	stime, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("proc stat: stime: %w", err)
	}
	return utime + stime, nil
}

// parsePeakRSS returns VmHWM, the peak resident set size, in bytes from a
// /proc/<pid>/status document.
func parsePeakRSS(status string) (uint64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || name != "VmHWM" {
			continue
		}
		f := strings.Fields(value)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("proc status: VmHWM %q", value)
		}
		kb, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("proc status: VmHWM: %w", err)
		}
		return kb * 1024, nil
	}
	return 0, errors.New("proc status: no VmHWM")
}

// cpuSeconds is the CPU time (user + system) process pid has used so far.
func cpuSeconds(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	ticks, err := parseCPUTicks(string(b))
	if err != nil {
		return 0, err
	}
	return float64(ticks) / clockTicks, nil
}

// peakRSS is the peak resident set size of process pid so far, in bytes.
func peakRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parsePeakRSS(string(b))
}

// parseCPUModel returns the first "model name" of a /proc/cpuinfo document.
func parseCPUModel(cpuinfo string) string {
	sc := bufio.NewScanner(strings.NewReader(cpuinfo))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(name) == "model name" {
			return strings.TrimSpace(value)
		}
	}
	return "unknown CPU"
}

// parseBusyTicks returns the busy time (all but idle and iowait) and the
// total time of the aggregate "cpu" line of /proc/stat, in ticks.
func parseBusyTicks(stat string) (busy, total uint64, err error) {
	line, _, _ := strings.Cut(stat, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, errors.New("proc stat: no aggregate cpu line")
	}
	// user nice system idle iowait irq softirq steal (guest time is
	// already counted in user).
	for i, v := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("proc stat: cpu field %d: %w", i+1, err)
		}
		total += n
		if i != 3 && i != 4 {
			busy += n
		}
	}
	return busy, total, nil
}

// systemBusySeconds is the CPU time all processes have used so far.
func systemBusySeconds() (float64, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	busy, _, err := parseBusyTicks(string(b))
	return float64(busy) / clockTicks, err
}

// cpuSample is the CPU time used so far by the server, by this process (the
// load generator) and by the whole machine.
type cpuSample struct {
	Server, Self, System float64
}

func sampleCPU(pid int) (cpuSample, error) {
	var s cpuSample
	var err error
	if s.Server, err = cpuSeconds(pid); err != nil {
		return s, err
	}
	if s.Self, err = cpuSeconds(os.Getpid()); err != nil {
		return s, err
	}
	s.System, err = systemBusySeconds()
	return s, err
}

// foreign is the CPU time others than the server and the load generator
// used between two samples: other work on the machine skews the results.
func foreign(a, b cpuSample) float64 {
	return max((b.System-a.System)-(b.Server-a.Server)-(b.Self-a.Self), 0)
}

// waitQuiet waits, at most limit, for a second in which the machine's CPU
// (this process excluded) is at most share busy, so that a peer does not
// start while other work is running. It reports whether it found one.
func waitQuiet(ctx context.Context, share float64, limit time.Duration) (bool, error) {
	deadline := time.Now().Add(limit)
	for {
		a, err := sampleCPU(os.Getpid())
		if err != nil {
			return false, err
		}
		start := time.Now()
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(time.Second):
		}
		b, err := sampleCPU(os.Getpid())
		if err != nil {
			return false, err
		}
		// Server and Self are both this process here: count it once.
		busy := max((b.System-a.System)-(b.Self-a.Self), 0)
		if busy/(time.Since(start).Seconds()*float64(runtime.NumCPU())) <= share {
			return true, nil
		}
		if time.Now().After(deadline) {
			return false, nil
		}
	}
}
