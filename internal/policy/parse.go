package policy

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
)

// parseCache keeps the modules of a policy directory's last load, by path
// and content, so that a reload parses only the files that changed: an
// edit of the data alone parses no module (parsing is most of a load's
// work: about 70 ms and 26 MB for the shipped policy, all of it beside the
// decisions being served). A nil parseCache parses every file.
//
// A kept module is handed to every version that loads the same file: the
// compiler works on copies (ast.Compiler.Compile), and nothing else here
// changes a parsed module.
type parseCache struct {
	mu    sync.Mutex
	files map[string]parsedFile
}

type parsedFile struct {
	sum  [sha256.Size]byte
	file *loader.RegoFile
}

// parserOptions are those OPA's loader parses a directory's modules with
// (see LoadDir).
var parserOptions = ast.ParserOptions{RegoVersion: ast.RegoV1, ProcessAnnotation: true}

// parse reads and parses the modules at paths, each of at most maxBytes
// (the sizes were checked before; a file that grew since is refused). The
// cache then holds these files only.
func (c *parseCache) parse(paths []string, maxBytes int64) (map[string]*loader.RegoFile, error) {
	out := make(map[string]*loader.RegoFile, len(paths))
	next := make(map[string]parsedFile, len(paths))
	var errs []error
	for _, path := range paths {
		raw, err := readAtMost(path, maxBytes)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sum := sha256.Sum256(raw)
		if f, ok := c.lookup(path, sum); ok {
			out[loader.CleanPath(path)], next[path] = f, parsedFile{sum, f}
			continue
		}
		m, err := ast.ParseModuleWithOpts(path, string(raw), parserOptions)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		f := &loader.RegoFile{Name: path, Parsed: m, Raw: raw}
		out[loader.CleanPath(path)], next[path] = f, parsedFile{sum, f}
	}
	if len(errs) > 0 {
		// The last good files stay: the next load parses only what
		// changed since them.
		return nil, errors.Join(errs...)
	}
	if c != nil {
		c.mu.Lock()
		c.files = next
		c.mu.Unlock()
	}
	return out, nil
}

func (c *parseCache) lookup(path string, sum [sha256.Size]byte) (*loader.RegoFile, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.files[path]
	return f.file, ok && f.sum == sum
}

// readAtMost reads the file at path, refusing one of more than limit bytes.
func readAtMost(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > limit {
		size := int64(len(b))
		if info, err := f.Stat(); err == nil {
			size = max(size, info.Size())
		}
		return nil, &TooLargeError{Path: path, Size: size, Limit: limit, Setting: "policy.max_file_bytes"}
	}
	return b, nil
}
