package policy

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"

	"github.com/tokenguard/pdp/internal/config"
)

// Limits bound what one policy source may hold, the same for a policy
// directory and for every bundle (local or downloaded). Sizes are checked
// before anything is read: a version over a limit is refused without
// loading it, and the previous one keeps serving.
type Limits struct {
	// MaxFileBytes bounds each file (uncompressed).
	MaxFileBytes int64
	// MaxTotalBytes bounds the files of the source together (uncompressed;
	// a downloaded bundle's compressed body too).
	MaxTotalBytes int64
}

// DefaultLimits are policy.max_file_bytes and policy.max_total_bytes when
// they are not set.
var DefaultLimits = Limits{MaxFileBytes: config.DefaultPolicyMaxFileBytes, MaxTotalBytes: config.DefaultPolicyMaxTotalBytes}

// orDefault fills in the limits that are not set.
func (l Limits) orDefault() Limits {
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = DefaultLimits.MaxFileBytes
	}
	if l.MaxTotalBytes <= 0 {
		l.MaxTotalBytes = max(DefaultLimits.MaxTotalBytes, l.MaxFileBytes)
	}
	return l
}

// ErrTooLarge is the refusal of a policy source over a size limit; the
// error is a *TooLargeError.
var ErrTooLarge = errors.New("policy source over its size limit")

// TooLargeError names the file (or the source, for the total) over a limit.
type TooLargeError struct {
	// Path is the file over policy.max_file_bytes, or the directory or
	// bundle over policy.max_total_bytes.
	Path string
	// Size is the file's size, or the source's total so far.
	Size int64
	// Limit is the limit exceeded; Setting its configuration key.
	Limit   int64
	Setting string
}

func (e *TooLargeError) Error() string {
	if e.Setting == "policy.max_total_bytes" {
		return fmt.Sprintf("%s: its files hold more than %d bytes (%s)", e.Path, e.Limit, e.Setting)
	}
	return fmt.Sprintf("%s: %d bytes, more than %d (%s)", e.Path, e.Size, e.Limit, e.Setting)
}

// Is makes errors.Is(err, ErrTooLarge) and errors.Is(err, ErrRefused) hold.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge || target == ErrRefused }

// counter adds up file sizes against the limits.
type counter struct {
	lim   Limits
	root  string
	total int64
}

// add counts a file of size bytes at path.
func (c *counter) add(path string, size int64) error {
	if size > c.lim.MaxFileBytes {
		return &TooLargeError{Path: path, Size: size, Limit: c.lim.MaxFileBytes, Setting: "policy.max_file_bytes"}
	}
	c.total += size
	if c.total > c.lim.MaxTotalBytes {
		return &TooLargeError{Path: c.root, Size: c.total, Limit: c.lim.MaxTotalBytes, Setting: "policy.max_total_bytes"}
	}
	return nil
}

// maxTreeDepth bounds the directories walked (a symbolic link loop).
const maxTreeDepth = 64

// checkTree checks the sizes of the files below root that a loader
// following symbolic links (as OPA's does) would read, skipping what skip
// says to (nil: nothing). Nothing is read.
// It returns the files' total size.
func checkTree(root string, lim Limits, skip func(path string, info fs.FileInfo, depth int) bool) (int64, error) {
	c := &counter{lim: lim.orDefault(), root: root}
	var walk func(path string, depth int) error
	walk = func(path string, depth int) error {
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		if skip != nil && skip(path, info, depth) {
			return nil
		}
		if !info.IsDir() {
			// A device, a pipe or a socket (or a link to one: /dev/zero)
			// has no size to check, and a loader reading it would never
			// stop, or never start.
			if !info.Mode().IsRegular() {
				return fmt.Errorf("%s: not a regular file", path)
			}
			return c.add(path, info.Size())
		}
		if depth > maxTreeDepth {
			return fmt.Errorf("%s: more than %d directories deep", path, maxTreeDepth)
		}
		entries, err := os.ReadDir(path)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := walk(filepath.Join(path, e.Name()), depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(root, 0); err != nil {
		return 0, err
	}
	return c.total, nil
}

// checkTarball checks the sizes of the files of a .tar.gz bundle, from
// their headers (the tar reader holds each file to its header's size), and
// how much it decompresses to, without keeping anything.
// name is the bundle's, where its path or URL for messages.
func checkTarball(name, where string, r io.Reader, lim Limits) error {
	c := &counter{lim: lim.orDefault(), root: where}
	gz, err := gzip.NewReader(r)
	if err != nil {
		return refused(fmt.Errorf("read bundle %s: %w", name, err))
	}
	defer gz.Close()
	// Decompression is bounded too, headers and padding included (a
	// bundle of a million empty files is as large as its headers).
	counted := &countingReader{r: gz, limit: 2*c.lim.MaxTotalBytes + 1<<20}
	tr := tar.NewReader(counted)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if counted.over() {
				return &TooLargeError{Path: where, Size: counted.n, Limit: c.lim.MaxTotalBytes, Setting: "policy.max_total_bytes"}
			}
			return refused(fmt.Errorf("read bundle %s: %w", name, err))
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		if err := c.add(where+":"+h.Name, h.Size); err != nil {
			return err
		}
	}
}

// countingReader reads at most limit bytes from r, counting them.
type countingReader struct {
	r     io.Reader
	n     int64
	limit int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n >= c.limit {
		return 0, io.ErrUnexpectedEOF
	}
	p = p[:min(int64(len(p)), c.limit-c.n)]
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

func (c *countingReader) over() bool { return c.n >= c.limit }

// bigVersion is the size of policy files from which the memory of a
// replaced version is handed back to the operating system at once, rather
// than as the runtime gets round to it (over minutes).
const bigVersion = 8 << 20

// releaseMemory hands the memory of refused and replaced versions back to
// the operating system: after a version was refused (its size is not known:
// it may have failed half-way through a big file), and after versions of
// retired bytes in all were replaced, when that is big. A version refused
// for its size was never read: nothing to hand back.
func releaseMemory(refused bool, retired int64) {
	if refused || retired >= bigVersion {
		// Two collections: OPA's evaluation keeps objects in sync.Pools,
		// which let go of them only at the second.
		runtime.GC()
		debug.FreeOSMemory()
	}
}
