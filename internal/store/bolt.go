package store

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// FileName is the name of the bbolt file inside the data dir.
const FileName = "pdp.db"

// schemaVersion is written to the meta bucket of a new file; a file with
// another version is refused rather than misread.
const schemaVersion = "1"

// Bucket layout. Every value in a record bucket starts with the record
// header (see record.go): a version byte and the expiry.
//
//	meta/            "schema" -> schemaVersion
//	revocations/     one nested bucket per Kind: jti/, session/, subject/, client/
//	  <kind>/        iss || 0x00 || value -> header || not_before || created_at || len(id) || id || reason
//	revocation_ids/  id -> kind tag || key in the kind's bucket
//	fingerprints/    token hash -> header || JSON Fingerprint
//	dpop_jtis/       replay key -> header
//	set_jtis/        SET replay key -> header
//	families/        family id -> header || JSON Family
//	family_tokens/   refresh-token hash -> header || family id
//	ttl/             bigEndian(expiry) || tag || key -> empty
//
// The ttl bucket indexes every record by expiry; the tag names the bucket the
// key belongs to. Sweep walks it from the start.
var (
	bucketRevocations   = []byte("revocations")    // one nested bucket per Kind
	bucketRevocationIDs = []byte("revocation_ids") // id -> tag || primary key
	bucketFingerprints  = []byte("fingerprints")   // token hash -> record
	bucketDPoP          = []byte("dpop_jtis")      // replay key -> record
	bucketSETs          = []byte("set_jtis")       // SET replay key -> record
	bucketFamilies      = []byte("families")       // family id -> record
	bucketFamilyTokens  = []byte("family_tokens")  // refresh-token hash -> record (family id)
	bucketTTL           = []byte("ttl")            // bigEndian(expiry) || tag || primary key -> empty
	bucketMeta          = []byte("meta")           // "schema" -> schemaVersion

	keySchema = []byte("schema")
)

// Defaults of BoltOptions.
const (
	DefaultLockTimeout   = time.Second
	DefaultPrefixV4Bits  = 24
	DefaultPrefixV6Bits  = 56
	DefaultCheckTimeout  = 10 * time.Second
	DefaultWatchInterval = 2 * time.Second
)

// BoltOptions tune OpenBolt. The zero value is usable: every zero field takes
// its default.
type BoltOptions struct {
	// LockTimeout bounds the wait for the data dir's lock (pdp.lock). A
	// second process opening the same data dir gives up after it with
	// ErrLocked instead of waiting forever. Default DefaultLockTimeout.
	LockTimeout time.Duration
	// CheckTimeout bounds the consistency check of an existing file at
	// open; a check that does not finish in time fails the open. Default
	// DefaultCheckTimeout.
	CheckTimeout time.Duration
	// SkipCheck opens without the consistency check (for files too large
	// to check at every start). A corrupt file may then crash the open.
	SkipCheck bool
	// Reset allows starting with an empty store where the store-id file
	// says a store existed but pdp.db is missing or empty. Without it such
	// an open fails with ErrMissing.
	Reset bool
	// WatchInterval is how often the store checks that its file is still
	// the one at its path, and probes a disk that refused a write. Default
	// DefaultWatchInterval.
	WatchInterval time.Duration
	// PrefixV4Bits and PrefixV6Bits give the length of the network prefix
	// recorded with a fingerprint. Defaults /24 and /56.
	PrefixV4Bits int
	PrefixV6Bits int
	// CommitWait is how long a write transaction waits for more writes
	// when the previous one was shared by several (see batcher): DPoP
	// replay checks, revocations and single sightings. Zero: no wait.
	CommitWait time.Duration
	// Now is the clock used to tell expired records. Default time.Now.
	Now func() time.Time
	// Logger receives the sweeper's reports. Default slog.Default().
	Logger *slog.Logger
}

func (o BoltOptions) withDefaults() (BoltOptions, error) {
	if o.LockTimeout == 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.PrefixV4Bits == 0 {
		o.PrefixV4Bits = DefaultPrefixV4Bits
	}
	if o.PrefixV6Bits == 0 {
		o.PrefixV6Bits = DefaultPrefixV6Bits
	}
	if o.CheckTimeout == 0 {
		o.CheckTimeout = DefaultCheckTimeout
	}
	if o.WatchInterval == 0 {
		o.WatchInterval = DefaultWatchInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var errs []error
	if o.LockTimeout < 0 {
		errs = append(errs, invalidf("lock timeout %s is negative", o.LockTimeout))
	}
	if o.CheckTimeout < 0 {
		errs = append(errs, invalidf("check timeout %s is negative", o.CheckTimeout))
	}
	if o.WatchInterval < 0 {
		errs = append(errs, invalidf("watch interval %s is negative", o.WatchInterval))
	}
	if o.PrefixV4Bits < 1 || o.PrefixV4Bits > 32 {
		errs = append(errs, invalidf("IPv4 prefix length %d is outside 1..32", o.PrefixV4Bits))
	}
	if o.PrefixV6Bits < 1 || o.PrefixV6Bits > 128 {
		errs = append(errs, invalidf("IPv6 prefix length %d is outside 1..128", o.PrefixV6Bits))
	}
	return o, errors.Join(errs...)
}

// Bolt is the embedded Store: one bbolt file, fsync'ed on every commit.
//
// Every write is committed, and fsync'ed, before the method returns.
// Revocations and refresh families commit their own transaction; fingerprints
// and DPoP replay keys, written on the decision path, are group-committed so
// that concurrent decisions share one fsync (see batcher).
//
// The store guards its file (see fault.go): the data dir is locked by a lock
// file of its own for the store's life; every write is acknowledged only
// after the file at the store's path is found to be the one written; a
// panic of bbolt on an inconsistent page becomes ErrCorrupt. A faulted
// store refuses writes with an error matching ErrFaulted and Ready reports
// the fault.
type Bolt struct {
	db       *bolt.DB
	batch    *batcher
	dir      string
	path     string
	opts     BoltOptions
	versions *versions
	// pending holds the sightings noted and not yet written.
	pending *pending

	lock  *dirLock
	ident os.FileInfo // the file opened, to compare with the file at path
	// fault is the lasting fault (removed, corrupt); writeFault the last
	// write the disk refused, until a write succeeds.
	fault      atomic.Pointer[FaultError]
	writeFault atomic.Pointer[FaultError]
	stop       chan struct{}
	watchDone  chan struct{}
	// backingUp is set while a backup is taken (one at a time).
	backingUp atomic.Bool
	// checkMu and lastCheck bound the checks panics lead to.
	checkMu   sync.Mutex
	lastCheck time.Time
	// rest is the pause of a sweep between two transactions (restCtx).
	rest func(context.Context, time.Duration) error
}

var _ Store = (*Bolt)(nil)

// lockedError reports a data dir held by another process.
type lockedError struct {
	dir     string
	timeout time.Duration
}

func (e *lockedError) Error() string {
	return fmt.Sprintf("store: data dir %s is in use by another pdp process (its lock was not released within %s)", e.dir, e.timeout)
}

func (e *lockedError) Is(target error) bool { return target == ErrLocked }

// OpenBolt opens, or creates, the store file in dataDir (created 0700 when
// missing).
//
//   - It first takes the data dir's lock file; when another process holds
//     it, it fails after opts.LockTimeout with an error matching ErrLocked.
//   - A missing or empty pdp.db where the store-id file says a store
//     existed fails with ErrMissing, unless opts.Reset.
//   - An existing file is checked (checkFile, then bbolt's Tx.Check) within
//     opts.CheckTimeout, unless opts.SkipCheck; an inconsistent file fails
//     with an error matching ErrCorrupt.
//   - A store-id file is written when there is none (a new store, or a
//     store made before store ids).
func OpenBolt(dataDir string, opts BoltOptions) (_ *Bolt, err error) {
	opts, err = opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	if dataDir == "" {
		return nil, fmt.Errorf("store: open: %w", invalidf("data dir is empty"))
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data dir: %w", err)
	}
	lock, err := lockDir(dataDir, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = lock.release()
		}
	}()
	removeSnapshots(dataDir, opts.Logger)
	path := filepath.Join(dataDir, FileName)
	id, err := readStoreID(dataDir)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(path)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	empty := err != nil || fi.Size() == 0
	switch {
	case empty && id != "" && !opts.Reset:
		return nil, &missingError{path: path, idPath: filepath.Join(dataDir, IDFileName)}
	case empty && id != "":
		opts.Logger.Warn("store reset: starting with an empty store where one existed", "path", path)
		id = ""
	case !empty && !opts.SkipCheck:
		ctx, cancel := context.WithTimeout(context.Background(), opts.CheckTimeout)
		cerr := CheckFile(ctx, path)
		cancel()
		if errors.Is(cerr, context.DeadlineExceeded) {
			return nil, fmt.Errorf("store: the consistency check of %s did not finish within %s: raise store.check_timeout or skip the check (store.check_on_open: false, --skip-store-check)",
				path, opts.CheckTimeout)
		}
		if cerr != nil {
			return nil, cerr
		}
	}
	db, err := openDB(path, opts.LockTimeout)
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, &lockedError{dir: dataDir, timeout: opts.LockTimeout}
	}
	if err != nil {
		return nil, err
	}
	b := &Bolt{db: db, dir: dataDir, path: path, opts: opts, versions: newVersions(), pending: newPending(),
		lock: lock, stop: make(chan struct{}), watchDone: make(chan struct{}), rest: restCtx}
	b.batch = &batcher{update: b.run, committed: b.afterCommit, wait: opts.CommitWait, sleep: time.Sleep}
	if err := b.run(initBuckets); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if b.ident, err = os.Stat(path); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if id == "" {
		if err := writeStoreID(dataDir, newStoreID()); err != nil {
			_ = db.Close()
			return nil, fmt.Errorf("store: write %s: %w", IDFileName, err)
		}
	}
	go b.watch(opts.WatchInterval)
	return b, nil
}

// openDB opens the bbolt file; a panic or memory fault of bbolt (on a
// file that was not checked) becomes ErrCorrupt.
func openDB(path string, timeout time.Duration) (db *bolt.DB, err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if p := recover(); p != nil {
			err = &FaultError{Path: path, Kind: FaultCorrupt, Cause: fmt.Errorf("bbolt: %v", p)}
		}
	}()
	db, err = bolt.Open(path, 0o600, &bolt.Options{
		Timeout: timeout,
		// Not syncing the freelist keeps commits small; the freelist is
		// rebuilt from the file on open. Data pages are still fsync'ed.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	switch {
	case err == nil, errors.Is(err, berrors.ErrTimeout):
		return db, err
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, &FaultError{Path: path, Kind: FaultCorrupt, Cause: err}
	}
	return nil, fmt.Errorf("store: open %s: %w", path, err)
}

func initBuckets(tx *bolt.Tx) error {
	meta, err := tx.CreateBucketIfNotExists(bucketMeta)
	if err != nil {
		return err
	}
	switch v := meta.Get(keySchema); {
	case v == nil:
		if err := meta.Put(keySchema, []byte(schemaVersion)); err != nil {
			return err
		}
	case string(v) != schemaVersion:
		return fmt.Errorf("file has schema version %q, this build reads %q", v, schemaVersion)
	}
	for _, name := range [][]byte{bucketRevocationIDs, bucketFingerprints, bucketDPoP, bucketSETs, bucketFamilies, bucketFamilyTokens, bucketTTL} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	revs, err := tx.CreateBucketIfNotExists(bucketRevocations)
	if err != nil {
		return fmt.Errorf("create bucket %s: %w", bucketRevocations, err)
	}
	for _, k := range kinds {
		if _, err := revs.CreateBucketIfNotExists([]byte(k)); err != nil {
			return fmt.Errorf("create bucket %s/%s: %w", bucketRevocations, k, err)
		}
	}
	return nil
}

// Close closes the file and releases its lock. It waits for running
// transactions to finish.
func (b *Bolt) Close() error {
	b.versions.closed.Store(true)
	select {
	case <-b.stop:
	default:
		close(b.stop)
		<-b.watchDone
	}
	err := b.db.Close()
	if lerr := b.lock.release(); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Path is the store file.
func (b *Bolt) Path() string { return b.path }

// Stats counts the records of every bucket. It walks the pages of each
// bucket, which takes a few milliseconds per million records.
func (b *Bolt) Stats(ctx context.Context) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	st := Stats{Revocations: make(map[Kind]int, len(kinds))}
	err := b.view(func(tx *bolt.Tx) error {
		revs := tx.Bucket(bucketRevocations)
		for _, k := range kinds {
			st.Revocations[k] = revs.Bucket([]byte(k)).Stats().KeyN
		}
		st.Fingerprints = tx.Bucket(bucketFingerprints).Stats().KeyN
		st.DPoPJTIs = tx.Bucket(bucketDPoP).Stats().KeyN
		st.SETJTIs = tx.Bucket(bucketSETs).Stats().KeyN
		st.Families = tx.Bucket(bucketFamilies).Stats().KeyN
		st.FamilyTokens = tx.Bucket(bucketFamilyTokens).Stats().KeyN
		st.SizeBytes = tx.Size()
		return nil
	})
	if err != nil {
		return Stats{}, fmt.Errorf("store: stats: %w", err)
	}
	st.PendingSightings = b.pending.len()
	return st, nil
}

// now is the store's clock.
func (b *Bolt) now() time.Time { return b.opts.Now() }
