package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The consistency check of a store file. bbolt trusts its file: an
// inconsistent page makes it panic, or fault on its memory map, and when
// it opens a file for writing it walks every page in a goroutine of its
// own, where no recover reaches. checkFile therefore walks the file first
// with plain reads, bounds-checking everything bbolt would follow, so that
// what bbolt then reads cannot crash it; bbolt's own Tx.Check follows, on a
// read-only handle.

// Layout of a bbolt file (go.etcd.io/bbolt, format version 2). Integers
// are in the machine's byte order.
const (
	pageHeaderSize  = 16 // id u64, flags u16, count u16, overflow u32
	pageElemSize    = 16 // branch: pos u32, ksize u32, pgid u64; leaf: flags u32, pos u32, ksize u32, vsize u32
	bucketHeadSize  = 16 // root pgid u64, sequence u64
	metaSize        = 64 // magic, version, page size, flags, root bucket, freelist, high water mark, txid, checksum
	boltMagic       = 0xED0CDAED
	boltVersion     = 2
	flagBranch      = 0x01
	flagLeaf        = 0x02
	flagFreelist    = 0x10
	leafBucketFlag  = 0x01
	noFreelist      = ^uint64(0)
	maxCheckDepth   = 256
	minCheckPage    = 512
	maxCheckPage    = 1 << 20
	checkCtxEvery   = 64
	freelistCountFF = 0xFFFF
)

var ne = binary.NativeEndian

// fileMeta is the part of a meta page the check needs.
type fileMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	hwm      uint64
	txid     uint64
}

// parseMeta reads the meta of the page starting at b; ok is false when it
// is not a valid meta (bad magic, version or checksum).
func parseMeta(b []byte) (fileMeta, bool) {
	if len(b) < pageHeaderSize+metaSize {
		return fileMeta{}, false
	}
	m := b[pageHeaderSize : pageHeaderSize+metaSize]
	h := fnv.New64a()
	_, _ = h.Write(m[:56])
	if ne.Uint32(m[0:]) != boltMagic || ne.Uint32(m[4:]) != boltVersion || ne.Uint64(m[56:]) != h.Sum64() {
		return fileMeta{}, false
	}
	return fileMeta{pageSize: ne.Uint32(m[8:]), root: ne.Uint64(m[16:]), freelist: ne.Uint64(m[32:]),
		hwm: ne.Uint64(m[40:]), txid: ne.Uint64(m[48:])}, true
}

// checkWalker walks the pages of one file.
type checkWalker struct {
	ctx   context.Context
	r     io.ReaderAt
	size  int64
	ps    uint64
	hwm   uint64
	seen  map[uint64]bool
	pages int
}

// checkFile checks the structure of the bbolt file at path: its meta
// pages, and every page reachable from the root bucket (each in range and
// within the file, referenced once, of the right type, its elements inside
// it, keys in order across the tree, nested and inline buckets alike), and
// a synced freelist. It reads the file, never maps it, and stops with
// ctx's error when ctx ends.
func checkFile(ctx context.Context, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	return checkReader(ctx, f, fi.Size())
}

// checkReader is checkFile on the bytes of r.
func checkReader(ctx context.Context, r io.ReaderAt, size int64) error {
	m, err := chooseMeta(r, size)
	if err != nil {
		return err
	}
	w := &checkWalker{ctx: ctx, r: r, size: size, ps: uint64(m.pageSize), hwm: m.hwm, seen: map[uint64]bool{}}
	if m.hwm < 3 || m.hwm > uint64(size)/w.ps {
		return fmt.Errorf("the file holds %d bytes, its meta page counts %d pages of %d bytes: the file is truncated or the meta is wrong",
			size, m.hwm, m.pageSize)
	}
	if err := w.tree(m.root, nil, nil, 0); err != nil {
		return err
	}
	if m.freelist != noFreelist {
		if err := w.freelist(m.freelist); err != nil {
			return err
		}
	}
	return nil
}

// chooseMeta finds the page size and picks the meta page bbolt would use:
// the valid one with the higher transaction id.
func chooseMeta(r io.ReaderAt, size int64) (fileMeta, error) {
	buf := make([]byte, pageHeaderSize+metaSize)
	readMeta := func(off int64) (fileMeta, bool) {
		if off+int64(len(buf)) > size {
			return fileMeta{}, false
		}
		if _, err := r.ReadAt(buf, off); err != nil {
			return fileMeta{}, false
		}
		return parseMeta(buf)
	}
	var ps uint32
	if m, ok := readMeta(0); ok {
		ps = m.pageSize
	} else {
		// The first meta is damaged: find the second one as bbolt does.
		for i := 0; i <= 14 && ps == 0; i++ {
			if m, ok := readMeta(1024 << i); ok {
				ps = m.pageSize
			}
		}
	}
	if ps == 0 {
		return fileMeta{}, errors.New("no valid meta page (not a bbolt file, or both meta pages damaged)")
	}
	if ps < minCheckPage || ps > maxCheckPage || ps&(ps-1) != 0 {
		return fileMeta{}, fmt.Errorf("meta page gives an impossible page size %d", ps)
	}
	if size < 2*int64(ps) {
		return fileMeta{}, fmt.Errorf("the file holds %d bytes, less than its two meta pages", size)
	}
	m0, ok0 := readMeta(0)
	m1, ok1 := readMeta(int64(ps))
	if ok0 && m0.pageSize != ps {
		ok0 = false
	}
	if ok1 && m1.pageSize != ps {
		ok1 = false
	}
	switch {
	case ok0 && ok1 && m1.txid > m0.txid, ok1 && !ok0:
		return m1, nil
	case ok0:
		return m0, nil
	}
	return fileMeta{}, errors.New("no valid meta page")
}

// page reads the page id and its overflow pages, after checking that they
// are in range, inside the file and not referenced before.
func (w *checkWalker) page(id uint64, want uint16) ([]byte, error) {
	if w.pages++; w.pages%checkCtxEvery == 0 {
		if err := w.ctx.Err(); err != nil {
			return nil, err
		}
	}
	if id < 2 || id >= w.hwm {
		return nil, fmt.Errorf("page %d: out of range [2, %d)", id, w.hwm)
	}
	first := make([]byte, w.ps)
	if _, err := w.r.ReadAt(first, int64(id*w.ps)); err != nil {
		return nil, fmt.Errorf("page %d: %w", id, err)
	}
	hid, flags, overflow := ne.Uint64(first[0:]), ne.Uint16(first[8:]), uint64(ne.Uint32(first[12:]))
	if hid != id {
		return nil, fmt.Errorf("page %d: its header names page %d", id, hid)
	}
	if flags != want && !(want == flagBranch && flags == flagLeaf) {
		return nil, fmt.Errorf("page %d: type %#x where a %s page is expected", id, flags, pageTypeName(want))
	}
	if id+overflow >= w.hwm {
		return nil, fmt.Errorf("page %d: %d overflow pages run past the last page %d", id, overflow, w.hwm-1)
	}
	for i := id; i <= id+overflow; i++ {
		if w.seen[i] {
			return nil, fmt.Errorf("page %d: referenced twice", i)
		}
		w.seen[i] = true
	}
	if overflow == 0 {
		return first, nil
	}
	all := make([]byte, (overflow+1)*w.ps)
	copy(all, first)
	if _, err := w.r.ReadAt(all[w.ps:], int64((id+1)*w.ps)); err != nil {
		return nil, fmt.Errorf("page %d: overflow: %w", id, err)
	}
	return all, nil
}

func pageTypeName(flags uint16) string {
	switch flags {
	case flagBranch:
		return "branch or leaf"
	case flagLeaf:
		return "leaf"
	case flagFreelist:
		return "freelist"
	}
	return fmt.Sprintf("%#x", flags)
}

// tree checks the B+tree rooted at page id, whose keys must lie in
// [lo, hi) (nil: unbounded).
func (w *checkWalker) tree(id uint64, lo, hi []byte, depth int) error {
	if depth > maxCheckDepth {
		return fmt.Errorf("page %d: nested deeper than %d", id, maxCheckDepth)
	}
	p, err := w.page(id, flagBranch)
	if err != nil {
		return err
	}
	return w.elements(p, id, lo, hi, depth)
}

// elements checks the elements of page p (a page of the file, or an inline
// bucket's page, id 0) and follows them.
func (w *checkWalker) elements(p []byte, id uint64, lo, hi []byte, depth int) error {
	if len(p) < pageHeaderSize {
		return fmt.Errorf("page %d: shorter than its header", id)
	}
	flags, count := ne.Uint16(p[8:]), int(ne.Uint16(p[10:]))
	if pageHeaderSize+count*pageElemSize > len(p) {
		return fmt.Errorf("page %d: %d elements do not fit in %d bytes", id, count, len(p))
	}
	branch := flags == flagBranch
	if branch && count == 0 {
		return fmt.Errorf("page %d: branch page without elements", id)
	}
	var prev []byte
	for i := range count {
		off := uint64(pageHeaderSize + i*pageElemSize)
		e := p[off : off+pageElemSize]
		var pos, ksize, vsize uint64
		if branch {
			pos, ksize = uint64(ne.Uint32(e[0:])), uint64(ne.Uint32(e[4:]))
		} else {
			pos, ksize, vsize = uint64(ne.Uint32(e[4:])), uint64(ne.Uint32(e[8:])), uint64(ne.Uint32(e[12:]))
		}
		kStart := off + pos
		kEnd := kStart + ksize
		vEnd := kEnd + vsize
		if kEnd > uint64(len(p)) || vEnd > uint64(len(p)) {
			return fmt.Errorf("page %d: element %d lies outside the page", id, i)
		}
		key := p[kStart:kEnd]
		if prev != nil && bytes.Compare(prev, key) >= 0 {
			return fmt.Errorf("page %d: element %d: keys out of order", id, i)
		}
		if (lo != nil && bytes.Compare(key, lo) < 0) || (hi != nil && bytes.Compare(key, hi) >= 0) {
			return fmt.Errorf("page %d: element %d: key outside the range its parent gives", id, i)
		}
		prev = key
		if branch {
			next := hi
			if i+1 < count {
				no := uint64(pageHeaderSize + (i+1)*pageElemSize)
				np, nk := uint64(ne.Uint32(p[no:])), uint64(ne.Uint32(p[no+4:]))
				if no+np+nk > uint64(len(p)) {
					return fmt.Errorf("page %d: element %d lies outside the page", id, i+1)
				}
				next = p[no+np : no+np+nk]
			}
			if err := w.tree(ne.Uint64(e[8:]), key, next, depth+1); err != nil {
				return err
			}
			continue
		}
		if ne.Uint32(e[0:])&leafBucketFlag == 0 {
			continue
		}
		v := p[kEnd:vEnd]
		if len(v) < bucketHeadSize {
			return fmt.Errorf("page %d: element %d: bucket header too short", id, i)
		}
		if depth > maxCheckDepth {
			return fmt.Errorf("page %d: buckets nested deeper than %d", id, maxCheckDepth)
		}
		if root := ne.Uint64(v); root != 0 {
			if err := w.tree(root, nil, nil, depth+1); err != nil {
				return err
			}
			continue
		}
		inline := v[bucketHeadSize:]
		if len(inline) < pageHeaderSize || ne.Uint16(inline[8:]) != flagLeaf {
			return fmt.Errorf("page %d: element %d: inline bucket is not a leaf page", id, i)
		}
		if err := w.elements(inline, 0, nil, nil, depth+1); err != nil {
			return fmt.Errorf("page %d: element %d: inline bucket: %w", id, i, err)
		}
	}
	return nil
}

// freelist checks a synced freelist: its ids in range, none freed twice,
// none reachable.
func (w *checkWalker) freelist(id uint64) error {
	p, err := w.page(id, flagFreelist)
	if err != nil {
		return err
	}
	count, start := uint64(ne.Uint16(p[10:])), uint64(pageHeaderSize)
	if count == freelistCountFF {
		if len(p) < pageHeaderSize+8 {
			return fmt.Errorf("freelist page %d: too short", id)
		}
		count, start = ne.Uint64(p[pageHeaderSize:]), pageHeaderSize+8
	}
	if count > (uint64(len(p))-start)/8 {
		return fmt.Errorf("freelist page %d: %d ids do not fit", id, count)
	}
	free := make(map[uint64]bool, count)
	for i := range count {
		f := ne.Uint64(p[start+i*8:])
		switch {
		case f < 2 || f >= w.hwm:
			return fmt.Errorf("freelist page %d: free page %d out of range", id, f)
		case free[f]:
			return fmt.Errorf("freelist page %d: page %d freed twice", id, f)
		case w.seen[f]:
			return fmt.Errorf("freelist page %d: page %d is free and in use", id, f)
		}
		free[f] = true
	}
	return nil
}

// boltCheck runs bbolt's own consistency check on a read-only handle of
// the file at path, once checkFile has passed (so that bbolt's walk cannot
// crash). It stops waiting when ctx ends (the check goes on in the
// background, and its handle is closed when it is done).
func boltCheck(ctx context.Context, path string) error {
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		return err
	}
	tx, err := db.Begin(false)
	if err != nil {
		_ = db.Close()
		return err
	}
	done := make(chan error, 1)
	go func() {
		var first error
		for err := range tx.Check() {
			if first == nil {
				first = err
			}
		}
		_ = tx.Rollback()
		_ = db.Close()
		done <- first
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// CheckFile checks the store file at path as OpenBolt does before it opens
// one: the page walk, then bbolt's own check. It returns nil, ctx's error,
// or an error matching ErrCorrupt that names the file.
func CheckFile(ctx context.Context, path string) error {
	err := checkFile(ctx, path)
	if err == nil {
		err = boltCheck(ctx, path)
	}
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		return err
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("store: check: %w", err)
	}
	return &FaultError{Path: path, Kind: FaultCorrupt, Cause: err}
}
