// Package memlimit chooses the Go runtime's soft memory limit
// (debug.SetMemoryLimit) from runtime.memory_limit: a byte size, off, or
// auto, which is 90% of the cgroup memory limit the process runs under
// (cgroup v2 memory.max, cgroup v1 memory.limit_in_bytes) when one is set.
// The GOMEMLIMIT environment variable, when set, wins.
package memlimit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/tokenguard/pdp/internal/config"
)

// Sources of a Limit.
const (
	SourceEnv    = "GOMEMLIMIT"
	SourceConfig = "config"
	SourceCgroup = "cgroup"
	SourceNone   = "none"
)

// AutoFraction is the share of the cgroup limit that auto sets: the rest
// is for what the Go heap does not count (stacks, mmapped bbolt pages, the
// runtime's own).
const AutoFraction = 0.9

// maxLimit is the largest cgroup value taken as a limit; anything above
// (v1 writes 2^63 rounded to a page for "no limit") means none.
const maxLimit = 1 << 50

// maxFileBytes bounds what is read of one cgroup file.
const maxFileBytes = 64 << 10

// Limit is the memory limit chosen and why.
type Limit struct {
	// Bytes is the limit set (0: none).
	Bytes int64 `json:"bytes"`
	// Source is SourceEnv, SourceConfig, SourceCgroup or SourceNone.
	Source string `json:"source"`
	// Cgroup is the cgroup limit found (0: none), with auto.
	Cgroup int64 `json:"cgroup_bytes,omitempty"`
}

// Choose decides the limit for mode (auto, off or a byte size). fsys is
// the root file system (os.DirFS("/")); env is the GOMEMLIMIT environment
// variable. An unreadable cgroup tree is no limit, with the error.
func Choose(mode, env string, fsys fs.FS) (Limit, error) {
	if env != "" {
		return Limit{Bytes: debug.SetMemoryLimit(-1), Source: SourceEnv}, nil
	}
	switch mode {
	case config.MemoryLimitOff:
		return Limit{Source: SourceNone}, nil
	case config.MemoryLimitAuto, "":
		cg, err := CgroupLimit(fsys)
		if err != nil || cg == 0 {
			return Limit{Source: SourceNone}, err
		}
		return Limit{Bytes: int64(float64(cg) * AutoFraction), Source: SourceCgroup, Cgroup: cg}, nil
	default:
		n, err := config.ParseByteSize(mode)
		if err != nil {
			return Limit{Source: SourceNone}, fmt.Errorf("runtime.memory_limit: %w", err)
		}
		return Limit{Bytes: n, Source: SourceConfig}, nil
	}
}

// Apply sets l as the Go runtime's memory limit, unless it came from
// GOMEMLIMIT (already in force) or is none.
func Apply(l Limit) {
	if l.Source == SourceConfig || l.Source == SourceCgroup {
		debug.SetMemoryLimit(l.Bytes)
	}
}

// CgroupLimit returns the memory limit of the cgroup the process is in, 0
// when there is none: cgroup v2 memory.max, else cgroup v1
// memory.limit_in_bytes, of the process's own cgroup (from
// /proc/self/cgroup) or, when that path is not mounted as such (a
// container's namespace), of the mount's root.
func CgroupLimit(fsys fs.FS) (int64, error) {
	data, err := readBounded(fsys, "proc/self/cgroup")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, nil
		}
		return 0, err
	}
	v2, v1, err := ParseProcCgroup(data)
	if err != nil {
		return 0, err
	}
	var candidates []string
	if v2 != "" {
		candidates = append(candidates, path.Join("sys/fs/cgroup", v2, "memory.max"), "sys/fs/cgroup/memory.max")
	}
	if v1 != "" {
		candidates = append(candidates, path.Join("sys/fs/cgroup/memory", v1, "memory.limit_in_bytes"), "sys/fs/cgroup/memory/memory.limit_in_bytes")
	}
	for _, p := range candidates {
		b, err := readBounded(fsys, p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		return ParseLimit(b)
	}
	return 0, nil
}

// ParseProcCgroup reads /proc/self/cgroup: lines of
// hierarchy-id:controllers:path. v2 is the path of the unified hierarchy
// (id 0, no controllers), v1 that of the hierarchy with the memory
// controller; "" when absent.
func ParseProcCgroup(data []byte) (v2, v1 string, err error) {
	if len(data) > maxFileBytes {
		return "", "", fmt.Errorf("/proc/self/cgroup is larger than %d bytes", maxFileBytes)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), maxFileBytes)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		id, rest, ok1 := strings.Cut(line, ":")
		ctrls, p, ok2 := strings.Cut(rest, ":")
		if !ok1 || !ok2 || !strings.HasPrefix(p, "/") {
			return "", "", fmt.Errorf("/proc/self/cgroup: malformed line %q", truncate(line))
		}
		p = path.Clean(p)
		switch {
		case id == "0" && ctrls == "":
			v2 = p
		case v1 == "" && containsController(ctrls, "memory"):
			v1 = p
		}
	}
	if err := sc.Err(); err != nil {
		return "", "", fmt.Errorf("/proc/self/cgroup: %w", err)
	}
	return v2, v1, nil
}

func containsController(list, name string) bool {
	for c := range strings.SplitSeq(list, ",") {
		if c == name {
			return true
		}
	}
	return false
}

// ParseLimit reads memory.max or memory.limit_in_bytes: a number of bytes,
// or "max". 0 means no limit: "max", or a value too large to be one.
func ParseLimit(data []byte) (int64, error) {
	s := strings.TrimSpace(string(data))
	if s == "max" {
		return 0, nil
	}
	if s == "" || len(s) > 20 {
		return 0, fmt.Errorf("cgroup memory limit %q is not a number", truncate(s))
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cgroup memory limit %q is not a number", truncate(s))
	}
	if n == 0 || n > maxLimit || n > math.MaxInt64 {
		return 0, nil
	}
	return int64(n), nil
}

func readBounded(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read /%s: %w", name, err)
	}
	if len(b) > maxFileBytes {
		return nil, fmt.Errorf("/%s is larger than %d bytes", name, maxFileBytes)
	}
	return b, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
