package policy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watchRetry is the pause before watching again a path that could not be
// watched (missing, or replaced as a whole).
const watchRetry = 2 * time.Second

// watchPath calls reload whenever something at path changes, debounced:
// after the changes have settled for debounce, and at the latest 4 times
// debounce after the first one. A directory is watched with its
// subdirectories (hidden ones left out); for a file, its directory is
// watched and only events naming the file count. Each time the watch is
// (re)established, reload is called once, to catch changes made before.
// problem reports why a path cannot be watched (once per outage). It
// returns when ctx ends.
func watchPath(ctx context.Context, path string, debounce time.Duration, reload func(), problem func(error)) {
	path = filepath.Clean(path)
	failing := false
	for ctx.Err() == nil {
		w, err := newWatch(path)
		if err != nil {
			if !failing {
				problem(err)
				failing = true
			}
			select {
			case <-ctx.Done():
			case <-time.After(watchRetry):
			}
			continue
		}
		failing = false
		reload()
		w.run(ctx, debounce, reload)
		_ = w.fsw.Close()
	}
}

// watch is one fsnotify watcher over a directory tree or a single file.
type watch struct {
	fsw  *fsnotify.Watcher
	root string // the watched directory
	file string // the watched file, or "" for a directory tree
}

func newWatch(path string) (*watch, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	fsw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	w := &watch{fsw: fsw, root: path}
	if !fi.IsDir() {
		w.root, w.file = filepath.Dir(path), path
		err = fsw.Add(w.root)
	} else {
		err = w.addTree(path)
	}
	if err != nil {
		_ = fsw.Close()
		return nil, fmt.Errorf("watch %s: %w", path, err)
	}
	return w, nil
}

// addTree watches dir and its subdirectories, hidden ones left out.
func (w *watch) addTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil // removed while walking
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		return w.fsw.Add(p)
	})
}

// run delivers debounced changes to reload until ctx ends or the watched
// directory itself goes away (then the caller watches it again).
func (w *watch) run(ctx context.Context, debounce time.Duration, reload func()) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	var first time.Time // of the pending changes; zero when none are
	changed := func() {
		now := time.Now()
		if first.IsZero() {
			first = now
		}
		if wait := first.Add(4 * debounce).Sub(now); wait > debounce {
			timer.Reset(debounce)
		} else {
			timer.Reset(max(wait, 0))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.fsw.Events:
			if !ok {
				return
			}
			name := filepath.Clean(ev.Name)
			if name == w.root && ev.Has(fsnotify.Remove|fsnotify.Rename) {
				reload() // report what is (not) there now, then watch again
				return
			}
			if w.file != "" && name != w.file {
				continue
			}
			if w.file == "" && ev.Has(fsnotify.Create) {
				if fi, err := os.Stat(name); err == nil && fi.IsDir() && !strings.HasPrefix(fi.Name(), ".") {
					_ = w.addTree(name)
				}
			}
			changed()
		case err, ok := <-w.fsw.Errors:
			if !ok {
				return
			}
			if errors.Is(err, fsnotify.ErrEventOverflow) {
				changed() // events were lost: read everything again
			}
		case <-timer.C:
			first = time.Time{}
			reload()
		}
	}
}
