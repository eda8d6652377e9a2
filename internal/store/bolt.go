package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
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
	DefaultLockTimeout  = time.Second
	DefaultPrefixV4Bits = 24
	DefaultPrefixV6Bits = 56
)

// BoltOptions tune OpenBolt. The zero value is usable: every zero field takes
// its default.
type BoltOptions struct {
	// LockTimeout bounds the wait for the data file's lock. A second process
	// opening the same data dir gives up after it with ErrLocked instead of
	// waiting forever. Default DefaultLockTimeout.
	LockTimeout time.Duration
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
type Bolt struct {
	db       *bolt.DB
	batch    *batcher
	dir      string
	opts     BoltOptions
	versions *versions
	// pending holds the sightings noted and not yet written.
	pending *pending
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
// missing). When another process holds the file, it fails after
// opts.LockTimeout with an error that matches ErrLocked.
func OpenBolt(dataDir string, opts BoltOptions) (*Bolt, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("store: open: %w", err)
	}
	if dataDir == "" {
		return nil, fmt.Errorf("store: open: %w", invalidf("data dir is empty"))
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("store: create data dir: %w", err)
	}
	path := filepath.Join(dataDir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout: opts.LockTimeout,
		// Not syncing the freelist keeps commits small; the freelist is
		// rebuilt from the file on open. Data pages are still fsync'ed.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
	})
	if errors.Is(err, bolt.ErrTimeout) {
		return nil, &lockedError{dir: dataDir, timeout: opts.LockTimeout}
	}
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	if err := db.Update(initBuckets); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	return &Bolt{db: db, batch: &batcher{db: db, wait: opts.CommitWait, sleep: time.Sleep}, dir: dataDir, opts: opts, versions: newVersions(), pending: newPending()}, nil
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
	if err := b.db.Close(); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}

// Stats counts the records of every bucket. It walks the pages of each
// bucket, which takes a few milliseconds per million records.
func (b *Bolt) Stats(ctx context.Context) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	st := Stats{Revocations: make(map[Kind]int, len(kinds))}
	err := b.db.View(func(tx *bolt.Tx) error {
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
