package store

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Shared is the Store of a decision point that runs as one of several
// replicas: the state that must count everywhere lives in Redis (or Valkey),
// and every replica keeps a local bbolt view of the revocations.
//
//   - Revocations are written to Redis, one Lua script per write: a hash per
//     kind (queryable, the source of a full resync), an id index, and an
//     entry in a stream (ordered). A follower goroutine reads the stream
//     and applies each entry to the local bbolt file, which stays the read
//     path of CheckRevocation, GetRevocation and ListRevocations: decisions
//     never wait on the network for a revocation look-up. The id of the
//     last entry applied is kept in bbolt, so that a restart resumes where
//     it stopped; a replica that fell behind the stream's trimmed start
//     resyncs from the hashes.
//   - DPoP replay keys, fingerprints and refresh families live in Redis
//     only, each key with a TTL at its record's expiry, and each check-and-
//     write is one Lua script (atomic across replicas).
//
// Every Redis call is bounded by SharedOptions.Timeout. When Redis cannot be
// reached, revocation reads go on from the local view (Status says how
// stale it is), and the shared checks degrade as configured (see
// Degradation), noted in the decision's Notes and reported to
// SharedOptions.OnUnavailable.
//
// Keys of one family of records share a Redis Cluster hash tag, so that a
// script touches one slot: <prefix>{revocations}..., <prefix>{families}...;
// DPoP and fingerprint keys are spread over the cluster.
type Shared struct {
	local *Bolt
	// client is the Redis client in use (see rdb); a Sentinel failover
	// replaces it.
	client atomic.Pointer[redisClient]
	opts   SharedOptions
	keys   sharedKeys
	// pending holds the sightings this replica noted and has not written
	// to Redis yet.
	pending *pending

	cancel context.CancelFunc
	done   chan struct{}
	// topology follows a Redis Cluster's or a Sentinel set-up's
	// failovers; nil with one server.
	topology *topology
	// sentinel replaces the client when the Sentinels name a new master;
	// nil without Sentinels.
	sentinel *sentinelWatch
	watchers sync.WaitGroup

	mu     sync.Mutex
	st     followerState
	readyC chan struct{} // closed after the first catch-up
}

var _ Store = (*Shared)(nil)

// SharedOptions configure OpenShared.
type SharedOptions struct {
	// Addrs of the Redis servers: one for a standalone server, several for
	// a cluster, or the Sentinels when MasterName is set. Required.
	Addrs      []string
	MasterName string
	Username   string
	Password   string
	// TLS, when set, is the client TLS configuration.
	TLS *tls.Config
	// KeyPrefix starts every key. Required.
	KeyPrefix string
	// Timeout bounds every Redis call (the follower's blocking read waits
	// for BlockFor on top of it). Default 50ms.
	Timeout time.Duration
	// MaxFollowerLag is how long the local view may go without being
	// known current before Ready reports the replica not ready: a replica
	// that cannot see new revocations is taken out of rotation rather
	// than allowing revoked tokens. Default DefaultMaxFollowerLag.
	MaxFollowerLag time.Duration
	// BlockFor is how long one blocking read of the revocation stream
	// waits for new entries. Default 1s.
	BlockFor time.Duration
	// StreamMaxLen is the approximate length the revocation stream is
	// trimmed to. Default DefaultStreamMaxLen.
	StreamMaxLen int64
	// Replay and Fingerprint say what the DPoP replay (and refresh reuse)
	// check and the fingerprint lookup do while Redis is unavailable.
	// Defaults Deny and Monitor.
	Replay      Degradation
	Fingerprint Degradation
	// OnUnavailable, when set, is told of every check that met an
	// unavailable Redis, and whether it was let through (for metrics).
	OnUnavailable func(c Check, allowed bool)
	// Now is the clock used to tell expired records. Default: the local
	// store's clock.
	Now    func() time.Time
	Logger *slog.Logger
}

// Defaults of SharedOptions.
const (
	DefaultSharedTimeout  = 50 * time.Millisecond
	DefaultBlockFor       = time.Second
	DefaultStreamMaxLen   = 100_000
	DefaultMaxFollowerLag = 5 * time.Second
)

type sharedKeys struct {
	stream, revIDs, revHashPrefix, famPrefix, tokPrefix, dpopPrefix, setPrefix, fpPrefix string
}

func newSharedKeys(prefix string) sharedKeys {
	rev := prefix + "{revocations}"
	fam := prefix + "{families}"
	return sharedKeys{
		stream:        rev,
		revIDs:        rev + ":ids",
		revHashPrefix: rev + ":",
		famPrefix:     fam + ":f:",
		tokPrefix:     fam + ":t:",
		dpopPrefix:    prefix + "dpop:",
		setPrefix:     prefix + "set:",
		fpPrefix:      prefix + "fp:",
	}
}

func (k sharedKeys) revHash(kind Kind) string { return k.revHashPrefix + string(kind) }

// OpenShared connects to Redis and starts the follower that applies
// revocations to local. It does not wait for Redis: Ready reports when the
// local view has caught up. Close stops the follower, disconnects and
// closes local.
func OpenShared(local *Bolt, opts SharedOptions) (*Shared, error) {
	if local == nil {
		return nil, fmt.Errorf("store: open shared: %w", invalidf("no local store"))
	}
	if len(opts.Addrs) == 0 {
		return nil, fmt.Errorf("store: open shared: %w", invalidf("no Redis address"))
	}
	if opts.KeyPrefix == "" {
		return nil, fmt.Errorf("store: open shared: %w", invalidf("key prefix is empty"))
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultSharedTimeout
	}
	if opts.BlockFor <= 0 {
		opts.BlockFor = DefaultBlockFor
	}
	if opts.MaxFollowerLag <= 0 {
		opts.MaxFollowerLag = DefaultMaxFollowerLag
	}
	if opts.StreamMaxLen <= 0 {
		opts.StreamMaxLen = DefaultStreamMaxLen
	}
	if opts.Replay == "" {
		opts.Replay = Deny
	}
	if opts.Fingerprint == "" {
		opts.Fingerprint = Monitor
	}
	if !opts.Replay.Valid() || !opts.Fingerprint.Valid() {
		return nil, fmt.Errorf("store: open shared: %w", invalidf("degradation must be deny, allow_with_reason or monitor"))
	}
	if opts.Now == nil {
		opts.Now = local.now
	}
	if opts.Logger == nil {
		opts.Logger = local.opts.Logger
	}
	client, cluster := newRedisClient(opts)
	ctx, cancel := context.WithCancel(context.Background())
	s := &Shared{
		local:   local,
		opts:    opts,
		keys:    newSharedKeys(opts.KeyPrefix),
		pending: newPending(),
		cancel:  cancel,
		done:    make(chan struct{}),
		readyC:  make(chan struct{}),
	}
	s.client.Store(&redisClient{client})
	switch {
	case cluster != nil:
		s.topology = clusterTopology(cluster)
	case opts.MasterName != "":
		s.sentinel = newSentinelWatch(s)
		s.topology = &topology{reload: s.sentinel.kick}
		s.watchers.Go(func() { s.sentinel.run(ctx) })
	}
	if s.topology != nil {
		client.AddHook(s.topology)
		s.watchers.Go(func() { s.topology.run(ctx) })
	}
	go s.follow(ctx)
	return s, nil
}

// newRedisClient builds the client opts describe: a Sentinel-backed
// failover client with MasterName, a cluster client for several addresses
// (returned twice), or a client of one server.
func newRedisClient(opts SharedOptions) (redis.UniversalClient, *redis.ClusterClient) {
	uo := &redis.UniversalOptions{
		Addrs:                 opts.Addrs,
		MasterName:            opts.MasterName,
		Username:              opts.Username,
		Password:              opts.Password,
		TLSConfig:             opts.TLS,
		DialTimeout:           max(opts.Timeout, 500*time.Millisecond),
		ReadTimeout:           opts.Timeout,
		WriteTimeout:          opts.Timeout,
		PoolTimeout:           opts.Timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // a call is bounded by one timeout, never retried past it
		// A refused connection fails the call at once instead of being
		// retried until the timeout: decisions degrade without waiting.
		DialerRetries:      1,
		DialerRetryTimeout: time.Millisecond,
		DisableIdentity:    true,
	}
	if opts.MasterName != "" || len(opts.Addrs) < 2 {
		return redis.NewUniversalClient(uo), nil
	}
	co := uo.Cluster()
	// Failovers are followed on errors (see topology); the periodic
	// reload only bounds how stale the slot map gets without them.
	co.ClusterStateReloadInterval = clusterReloadInterval
	c := redis.NewClusterClient(co)
	return c, c
}

// Local returns the local view.
func (s *Shared) Local() *Bolt { return s.local }

// Close stops the follower, disconnects from Redis and closes the local
// store.
func (s *Shared) Close() error {
	s.cancel()
	<-s.done
	s.watchers.Wait()
	err := s.rdb().Close()
	return errors.Join(err, s.local.Close())
}

// redisClient boxes the client for Shared.client.
type redisClient struct{ redis.UniversalClient }

// rdb returns the Redis client in use.
func (s *Shared) rdb() redis.UniversalClient { return s.client.Load().UniversalClient }

func (s *Shared) now() time.Time { return s.opts.Now() }

// call returns a context bounded by the Redis timeout, and by half of what
// is left of ctx's deadline: a caller with a deadline (a decision) keeps the
// time to answer without the shared state when the call fails, as
// store.on_unavailable says, instead of running out of time itself.
func (s *Shared) call(ctx context.Context) (context.Context, context.CancelFunc) {
	d := s.opts.Timeout
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, max(time.Until(dl)/2, time.Millisecond))
	}
	return context.WithTimeout(ctx, d)
}

// failed classifies an error of a Redis call made with a context derived
// from parent: the caller's own cancellation is returned as it is, a reply
// from the server that reports a script or data problem as a plain error,
// and anything else (network, timeout, a server loading or failing over)
// as ErrUnavailable.
func failed(parent context.Context, op string, err error) error {
	if perr := parent.Err(); perr != nil {
		return perr
	}
	var rerr redis.Error
	if errors.As(err, &rerr) && !transientReply(rerr.Error()) {
		return fmt.Errorf("store: %s: %w", op, err)
	}
	return fmt.Errorf("store: %s: %w: %w", op, ErrUnavailable, err)
}

// transientReply reports server replies that mean "not now" rather than
// "wrong".
func transientReply(msg string) bool {
	for _, p := range []string{"LOADING", "CLUSTERDOWN", "MASTERDOWN", "TRYAGAIN", "READONLY", "BUSY", "NOREPLICAS", "NOAUTH", "WRONGPASS", "NOPERM"} {
		if strings.HasPrefix(msg, p) {
			return true
		}
	}
	return false
}

// degrade applies the configured degradation of check c to an
// ErrUnavailable: it notes the check in ctx, reports it, and returns whether
// the check may pass. A check already noted in this decision is not noted
// or reported again.
func (s *Shared) degrade(ctx context.Context, c Check, d Degradation) bool {
	if allowed, ok := notesOf(ctx).noted(c); ok {
		return allowed
	}
	allowed := d.Allows()
	NoteUnavailable(ctx, c, allowed)
	if s.opts.OnUnavailable != nil {
		s.opts.OnUnavailable(c, allowed)
	}
	return allowed
}

// metUnavailable returns an ErrUnavailable when the decision ctx belongs
// to already met the shared state unavailable: it is not asked again, so
// that one decision waits for at most one timeout.
func metUnavailable(ctx context.Context, op string) error {
	if notesOf(ctx).Empty() {
		return nil
	}
	return fmt.Errorf("store: %s: %w: not asked again within this decision", op, ErrUnavailable)
}

// pad encodes Unix nanoseconds as 20 decimal digits that sort as the times
// do, so that Lua scripts compare times as strings (Lua numbers are
// doubles, too narrow for nanoseconds).
func pad(n int64) string {
	return fmt.Sprintf("%020d", uint64(n)^(1<<63))
}

func unpad(s string) (int64, error) {
	u, err := strconv.ParseUint(s, 10, 64)
	if err != nil || len(s) != 20 {
		return 0, fmt.Errorf("unreadable time %q", s)
	}
	return int64(u ^ (1 << 63)), nil
}

// ttlMillis is the Redis TTL of a record that expires at exp, as seen at
// now: at least 1ms.
func ttlMillis(exp, now time.Time) int64 {
	return max(exp.Sub(now).Milliseconds()+1, 1)
}

// SpendDPoPJTI marks a proof as used, across replicas: one script checks
// and sets the key, with a TTL at exp.
func (s *Shared) SpendDPoPJTI(ctx context.Context, key string, exp time.Time) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := checkKey("replay key", key); err != nil {
		return false, fmt.Errorf("store: spend dpop jti: %w", err)
	}
	now := s.now()
	expN, err := checkExpiry("exp", exp, now)
	if err != nil {
		return false, fmt.Errorf("store: spend dpop jti: %w", err)
	}
	if err := metUnavailable(ctx, "spend dpop jti"); err != nil {
		if s.degrade(ctx, CheckReplay, s.opts.Replay) {
			return true, nil
		}
		return false, err
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	n, err := scriptSpend.Run(cctx, s.rdb(), []string{s.keys.dpopPrefix + key},
		pad(now.UnixNano()), pad(expN), ttlMillis(exp, now)).Int()
	if err != nil {
		err = failed(ctx, "spend dpop jti", err)
		if errors.Is(err, ErrUnavailable) && s.degrade(ctx, CheckReplay, s.opts.Replay) {
			return true, nil
		}
		return false, err
	}
	return n == 1, nil
}

// DPoPJTISpent reports, without writing anything, whether any replica
// spent a DPoP proof under key that is still remembered: what SpendDPoPJTI
// would answer with false. For explaining a decision, which must change
// nothing. Redis being unreachable is an error (an explanation says so
// rather than guess).
func (s *Shared) DPoPJTISpent(ctx context.Context, key string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := checkKey("replay key", key); err != nil {
		return false, fmt.Errorf("store: dpop jti spent: %w", err)
	}
	now := s.now()
	cctx, cancel := s.call(ctx)
	defer cancel()
	v, err := s.rdb().Get(cctx, s.keys.dpopPrefix+key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, failed(ctx, "dpop jti spent", err)
	}
	return v > pad(now.UnixNano()), nil
}

// SETSeen reports whether any replica remembers the SET with key as
// applied. Redis being unreachable is an error: the SET is then refused
// with a retry, never applied twice on a guess.
func (s *Shared) SETSeen(ctx context.Context, key string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	if err := checkKey("set key", key); err != nil {
		return false, fmt.Errorf("store: set seen: %w", err)
	}
	now := s.now()
	cctx, cancel := s.call(ctx)
	defer cancel()
	v, err := s.rdb().Get(cctx, s.keys.setPrefix+key).Result()
	switch {
	case errors.Is(err, redis.Nil):
		return false, nil
	case err != nil:
		return false, failed(ctx, "set seen", err)
	}
	return v > pad(now.UnixNano()), nil
}

// RememberSET records the SET with key as applied until exp, for every
// replica, with a Redis TTL at exp.
func (s *Shared) RememberSET(ctx context.Context, key string, exp time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkKey("set key", key); err != nil {
		return fmt.Errorf("store: remember set: %w", err)
	}
	now := s.now()
	exp = ClampExpiry(exp)
	expN, err := checkExpiry("exp", exp, now)
	if err != nil {
		return fmt.Errorf("store: remember set: %w", err)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	if err := scriptSpend.Run(cctx, s.rdb(), []string{s.keys.setPrefix + key},
		pad(now.UnixNano()), pad(expN), ttlMillis(exp, now)).Err(); err != nil {
		return failed(ctx, "remember set", err)
	}
	return nil
}

// RecordFingerprint folds a sighting into the token's fingerprint in Redis,
// with the same rule as Bolt.RecordFingerprint.
func (s *Shared) RecordFingerprint(ctx context.Context, tokenHash string, sg Sighting) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkKey("token hash", tokenHash); err != nil {
		return fmt.Errorf("store: record fingerprint: %w", err)
	}
	now := s.now()
	seen, err := sightingOf(sg, now, s.local.network)
	if err != nil {
		return fmt.Errorf("store: record fingerprint: %w", err)
	}
	cctx, cancel := s.call(ctx)
	defer cancel()
	err = scriptFingerprint.Run(cctx, s.rdb(), []string{s.keys.fpPrefix + tokenHash},
		pad(now.UnixNano()), pad(seen.LastSeen.UnixNano()), seen.IP, seen.Prefix, seen.UAHash, pad(seen.ExpiresAt.UnixNano()), ttlMillis(seen.ExpiresAt, now)).Err()
	if err != nil {
		err = failed(ctx, "record fingerprint", err)
		if errors.Is(err, ErrUnavailable) {
			s.degrade(ctx, CheckFingerprintWrite, Deny)
		}
		return err
	}
	return nil
}

// NoteSighting makes a sighting visible to this replica's LastSeen at once,
// before RecordFingerprint has written it to Redis; release lets go of it
// once that write has returned. Other replicas see it once it is written.
func (s *Shared) NoteSighting(tokenHash string, sg Sighting) (release func(), err error) {
	if err := checkKey("token hash", tokenHash); err != nil {
		return func() {}, fmt.Errorf("store: note sighting: %w", err)
	}
	seen, err := sightingOf(sg, s.now(), s.local.network)
	if err != nil {
		return func() {}, fmt.Errorf("store: note sighting: %w", err)
	}
	release, err = s.pending.note(tokenHash, seen)
	if err != nil {
		return release, fmt.Errorf("store: note sighting: %w", err)
	}
	return release, nil
}

// LastSeen returns the unexpired fingerprint of a token from Redis, with
// the sightings this replica noted and has not written yet. When Redis is
// unavailable and the fingerprint degradation allows it, only those count
// (without them the guardrail has no baseline to compare with).
func (s *Shared) LastSeen(ctx context.Context, tokenHash string) (Fingerprint, bool, error) {
	if err := ctx.Err(); err != nil {
		return Fingerprint{}, false, err
	}
	if err := checkKey("token hash", tokenHash); err != nil {
		return Fingerprint{}, false, fmt.Errorf("store: last seen: %w", err)
	}
	now := s.now()
	// Pending sightings first: one written in between is then seen twice
	// rather than not at all.
	pend, pending := s.pending.get(tokenHash, now.UnixNano())
	notes := notesOf(ctx)
	if a, ok := notes.fingerprint(tokenHash); ok {
		// Asked already in this decision (a kept decision's revalidation).
		fp, found := withPending(a.fp, a.found, pend, pending)
		return fp, found, nil
	}
	err := metUnavailable(ctx, "last seen")
	var vals []any
	if err == nil {
		cctx, cancel := s.call(ctx)
		vals, err = s.rdb().HMGet(cctx, s.keys.fpPrefix+tokenHash, "f", "l", "ip", "px", "ua", "n", "e").Result()
		cancel()
		if err != nil {
			err = failed(ctx, "last seen", err)
		}
	}
	if err != nil {
		if errors.Is(err, ErrUnavailable) && s.degrade(ctx, CheckFingerprint, s.opts.Fingerprint) {
			return pend, pending, nil
		}
		return Fingerprint{}, false, err
	}
	str := func(i int) string { v, _ := vals[i].(string); return v }
	if str(6) == "" || str(6) <= pad(now.UnixNano()) {
		notes.rememberFingerprint(tokenHash, storedSeen{})
		return pend, pending, nil
	}
	fp, err := decodeSharedFingerprint(str)
	if err != nil {
		return Fingerprint{}, false, fmt.Errorf("store: last seen: %w", err)
	}
	notes.rememberFingerprint(tokenHash, storedSeen{fp: fp, found: true})
	fp, found := withPending(fp, true, pend, pending)
	return fp, found, nil
}

func decodeSharedFingerprint(str func(int) string) (Fingerprint, error) {
	first, err1 := unpad(str(0))
	last, err2 := unpad(str(1))
	exp, err3 := unpad(str(6))
	count, err4 := strconv.ParseUint(str(5), 10, 64)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return Fingerprint{}, fmt.Errorf("unreadable fingerprint: %w", err)
	}
	return Fingerprint{
		FirstSeen: time.Unix(0, first).UTC(),
		LastSeen:  time.Unix(0, last).UTC(),
		IP:        str(2),
		Prefix:    str(3),
		UAHash:    str(4),
		Count:     count,
		ExpiresAt: time.Unix(0, exp).UTC(),
	}, nil
}

// Stats reports the local view's sizes: the revocations this replica
// applies. Records that live only in Redis (fingerprints, DPoP keys,
// families) are not counted.
func (s *Shared) Stats(ctx context.Context) (Stats, error) {
	st, err := s.local.Stats(ctx)
	st.PendingSightings = s.pending.len()
	return st, err
}

// Sweep removes expired records from the local view, and expired
// revocations from the Redis hashes (every replica may do it; each removal
// re-checks the expiry atomically). Records in Redis that only live by TTL
// expire by themselves.
func (s *Shared) Sweep(ctx context.Context, now time.Time) (int, error) {
	n, err := s.local.Sweep(ctx, now)
	if err != nil {
		return n, err
	}
	m, err := s.sweepShared(ctx, now)
	return n + m, err
}

// RunSweeper sweeps at once and then every interval, until ctx is done.
func (s *Shared) RunSweeper(ctx context.Context, interval time.Duration) error {
	return runSweeper(ctx, interval, s.Sweep, s.now, s.opts.Logger)
}

func (s *Shared) sweepShared(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for _, k := range kinds {
		err := s.scanRevocations(ctx, k, 256, "sweep", func(fields []string) error {
			var names []any
			for i := 0; i+1 < len(fields); i += 2 {
				names = append(names, fields[i])
			}
			if len(names) == 0 {
				return nil
			}
			cctx, cancel := s.call(ctx)
			defer cancel()
			args := append([]any{pad(now.UnixNano()), string(k)}, names...)
			n, err := scriptSweep.Run(cctx, s.rdb(), []string{s.keys.revHash(k), s.keys.revIDs}, args...).Int()
			if err != nil {
				return failed(ctx, "sweep", err)
			}
			total += n
			return nil
		})
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// scanRevocations hands page the field-value pairs of kind's revocation hash
// in Redis, count at a time (HSCAN); op names the work in errors.
func (s *Shared) scanRevocations(ctx context.Context, kind Kind, count int64, op string, page func(kv []string) error) error {
	var cursor uint64
	for {
		cctx, cancel := s.call(ctx)
		kv, next, err := s.rdb().HScan(cctx, s.keys.revHash(kind), cursor, "", count).Result()
		cancel()
		if err != nil {
			return failed(ctx, op, err)
		}
		if err := page(kv); err != nil {
			return err
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}
