//go:build integration

package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenguard/pdp/internal/redistest"
)

// failoverRun is three replicas (real stores) sharing a Redis whose master
// is killed: a revocation is written through one of them until it is
// acknowledged, and each replica is watched until it enforces it, while
// every replica keeps answering the decision-path calls.
type failoverRun struct {
	stores []*Shared
	clock  *clock
	// outage collects decision-path answers that were errors (a decision
	// would have been a 500) during the run.
	mu     sync.Mutex
	outage []string
}

func newFailoverRun(t *testing.T, opts SharedOptions) *failoverRun {
	t.Helper()
	r := &failoverRun{clock: newClock()}
	opts.Timeout = 250 * time.Millisecond
	opts.Fingerprint = Monitor
	for range 3 {
		s := startShared(t, t.TempDir(), r.clock, opts)
		t.Cleanup(func() { _ = s.Close() })
		r.stores = append(r.stores, s)
	}
	// Warm every replica's connections, and check the set-up replicates.
	r.revokeAndWait(t, "before", time.Time{})
	return r
}

// decisionCalls makes what a decision asks of the store, and notes errors.
func (r *failoverRun) decisionCalls(ctx context.Context, i int, s *Shared) {
	nctx, _ := WithNotes(ctx)
	if _, _, err := s.LastSeen(nctx, fmt.Sprint("tok-", i)); err != nil && ctx.Err() == nil {
		r.note(fmt.Sprintf("replica %d: LastSeen: %v", i, err))
	}
	if _, _, err := s.CheckRevocation(nctx, TokenRef{Issuer: iss, JTI: "jti-x"}); err != nil && ctx.Err() == nil {
		r.note(fmt.Sprintf("replica %d: CheckRevocation: %v", i, err))
	}
}

func (r *failoverRun) note(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.outage) < 10 {
		r.outage = append(r.outage, s)
	}
}

// revokeAndWait writes a revocation of subject sub through replica 0,
// retrying until it is acknowledged, then waits until every replica
// enforces it. It returns when it was acknowledged and when the last
// replica enforced it. promoted, when set, is polled for the moment of the
// promotion (zero until then) and the test fails when the revocation is
// not enforced everywhere within 2s of it.
func (r *failoverRun) revokeAndWait(t *testing.T, sub string, start time.Time) (acked, enforced time.Time) {
	t.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	var tries int
	for {
		tries++
		_, err := r.stores[0].PutRevocation(ctx, Revocation{ID: "rev-" + sub, Kind: KindSubject, Issuer: iss, Value: sub, ExpiresAt: r.clock.Now().Add(time.Hour)})
		if err == nil {
			acked = time.Now()
			break
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("revoke %s: %v", sub, err)
		}
		if time.Now().After(deadline) {
			if tp := r.stores[0].topology; tp != nil {
				t.Logf("slot map reloads asked for: %d", tp.reloads.Load())
			}
			t.Fatalf("revoke %s: not acknowledged within 30s (%d tries, the last: %v)", sub, tries, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	ref := TokenRef{Issuer: iss, Subject: sub, IssuedAt: r.clock.Now().Add(-time.Minute)}
	for i, s := range r.stores {
		for {
			if _, ok, _ := s.CheckRevocation(ctx, ref); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("replica %d does not enforce the revocation of %s acknowledged %s after the kill (status %+v)",
					i, sub, acked.Sub(start), s.Status())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	return acked, time.Now()
}

// load runs the decision-path calls on every replica until stop.
func (r *failoverRun) load(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for i, s := range r.stores {
		wg.Go(func() {
			for ctx.Err() == nil {
				r.decisionCalls(ctx, i, s)
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// watch polls promoted every 10ms from start and records the first time it
// reports true.
func watch(ctx context.Context, promoted func() bool) (at func() time.Time) {
	var t atomic.Int64
	go func() {
		for ctx.Err() == nil {
			if promoted() {
				t.Store(time.Now().UnixNano())
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	return func() time.Time {
		if n := t.Load(); n != 0 {
			return time.Unix(0, n)
		}
		return time.Time{}
	}
}

// check fails the test unless the revocation acknowledged after the kill
// was enforced everywhere within 2s of the promotion, and no decision-path
// call failed.
func (r *failoverRun) check(t *testing.T, killed, promotedAt, acked, enforced time.Time) {
	t.Helper()
	if promotedAt.IsZero() {
		t.Fatal("the promotion was never observed")
	}
	t.Logf("after the kill: promoted %s, first acknowledged revocation %s, enforced on every replica %s",
		promotedAt.Sub(killed).Round(time.Millisecond), acked.Sub(killed).Round(time.Millisecond), enforced.Sub(killed).Round(time.Millisecond))
	if d := enforced.Sub(promotedAt); d > 2*time.Second {
		t.Errorf("the revocation was enforced everywhere %s after the promotion, want within 2s", d.Round(time.Millisecond))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.outage) > 0 {
		t.Errorf("decision-path calls failed during the failover (decisions would have been 500s):\n%s", strings.Join(r.outage, "\n"))
	}
}

// TestSharedFollowsAClusterFailover kills (SIGKILL) the master that holds
// the revocation stream of a 3-master, 3-replica Redis Cluster: the
// replicas write through, and follow the stream on, the promoted replica
// within 2s of its promotion, and answer every decision-path call while
// the master is gone.
func TestSharedFollowsAClusterFailover(t *testing.T) {
	nodes := redistest.StartClusterWithReplicas(t, 3, 1)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.Addr())
	}
	run := newFailoverRun(t, SharedOptions{Addrs: addrs, KeyPrefix: "fo:"})
	stream := newSharedKeys("fo:").stream
	out, err := nodes[0].CLI("cluster", "keyslot", stream)
	if err != nil {
		t.Fatal(err)
	}
	slot, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("cluster keyslot: %q", out)
	}
	masterOf := func(via *redistest.Server) string {
		c := redis.NewClient(&redis.Options{Addr: via.Addr(), DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, MaxRetries: -1})
		defer c.Close()
		slots, err := c.ClusterSlots(context.Background()).Result()
		if err != nil {
			return ""
		}
		for _, s := range slots {
			if s.Start <= slot && slot <= s.End && len(s.Nodes) > 0 {
				return s.Nodes[0].Addr
			}
		}
		return ""
	}
	old := masterOf(nodes[0])
	var victim, witness *redistest.Server
	for _, n := range nodes {
		if n.Addr() == old {
			victim = n
		} else if witness == nil {
			witness = n
		}
	}
	if victim == nil {
		t.Fatalf("no node is the master of slot %d (%q)", slot, old)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := run.load(ctx)
	time.Sleep(200 * time.Millisecond)
	killed := time.Now()
	victim.Kill()
	promotedAt := watch(ctx, func() bool { m := masterOf(witness); return m != "" && m != old })
	acked, enforced := run.revokeAndWait(t, "after-kill", killed)
	time.Sleep(300 * time.Millisecond)
	stop()
	for promotedAt().IsZero() && time.Since(killed) < 30*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	run.check(t, killed, promotedAt(), acked, enforced)

	t.Run("ok/every replica follows the new master and is ready", func(t *testing.T) {
		for i, s := range run.stores {
			eventually(t, fmt.Sprint("replica ", i, " connected and ready"), func() bool { return s.Ready() == nil && s.Status().Connected })
		}
		run.revokeAndWait(t, "later", time.Now())
	})
}

// TestSharedFollowsASentinelFailover kills (SIGKILL) the master of a
// Sentinel set-up (master, replica, three Sentinels): the same guarantees
// as on a cluster.
func TestSharedFollowsASentinelFailover(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	sentinels := redistest.StartSentinels(t, master, 3, 2, 1)
	var addrs []string
	for _, s := range sentinels {
		addrs = append(addrs, s.Addr())
	}
	run := newFailoverRun(t, SharedOptions{Addrs: addrs, MasterName: "mymaster", KeyPrefix: "sfo:"})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stop := run.load(ctx)
	time.Sleep(200 * time.Millisecond)
	killed := time.Now()
	master.Kill()
	promotedAt := watch(ctx, func() bool {
		out, err := sentinels[0].CLI("sentinel", "get-master-addr-by-name", "mymaster")
		return err == nil && strings.Contains(out, strconv.Itoa(portOf(replica)))
	})
	acked, enforced := run.revokeAndWait(t, "after-kill", killed)
	time.Sleep(300 * time.Millisecond)
	stop()
	for promotedAt().IsZero() && time.Since(killed) < 30*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	run.check(t, killed, promotedAt(), acked, enforced)
	// Each replica replaced its client rather than wait for the old one's
	// pool to probe its way to the promoted master.
	for i, s := range run.stores {
		if n := s.sentinel.swaps.Load(); n != 1 {
			t.Errorf("replica %d replaced its Redis client %d times, want once", i, n)
		}
	}
}

func portOf(s *redistest.Server) int {
	_, p, _ := strings.Cut(s.Addr(), ":")
	n, _ := strconv.Atoi(p)
	return n
}

// TestSharedNotReadyOnceItCannotFollow: a replica that has not been able
// to follow the revocation stream for longer than MaxFollowerLag reports
// itself not ready (and says so in its status), and ready again once it
// caught up.
func TestSharedNotReadyOnceItCannotFollow(t *testing.T) {
	srv := redistest.Start(t)
	s := openShared(t, srv, "lag:", newClock(), SharedOptions{Timeout: 100 * time.Millisecond, MaxFollowerLag: time.Second})
	if err := s.Ready(); err != nil {
		t.Fatalf("not ready with Redis up: %v", err)
	}
	if st := s.Status(); !st.Following || st.MaxLagSeconds != 1 {
		t.Fatalf("status with Redis up: %+v", st)
	}
	srv.Kill()

	t.Run("fail/not ready once the lag passed max_follower_lag", func(t *testing.T) {
		eventually(t, "not ready", func() bool { return s.Ready() != nil })
		if err := s.Ready(); !strings.Contains(err.Error(), "not been able to follow") {
			t.Errorf("Ready = %v", err)
		}
		if st := s.Status(); st.Following || st.Ready || st.StaleSeconds <= 1 {
			t.Errorf("status = %+v, want not following, not ready, stale > 1s", st)
		}
	})
	t.Run("ok/ready again once it caught up", func(t *testing.T) {
		srv.Start()
		eventually(t, "ready again", func() bool { return s.Ready() == nil && s.Status().Following })
	})
}

// countCalls counts the commands a client sends on the decision path
// (the follower's stream reads are not counted).
type countCalls struct{ n atomic.Int64 }

func (c *countCalls) count(cmd redis.Cmder) {
	// A new connection's handshake (hello) is part of the call it serves.
	if name := cmd.Name(); !strings.HasPrefix(name, "x") && name != "hello" {
		c.n.Add(1)
	}
}

func (c *countCalls) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *countCalls) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error { c.count(cmd); return next(ctx, cmd) }
}
func (c *countCalls) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.count(cmd)
		}
		return next(ctx, cmds)
	}
}

// TestSharedOneRoundTripPerDecision: within one decision (one Notes), the
// fingerprint is asked of Redis once (a kept decision's revalidation and
// the evaluation after it share the answer), and nothing is asked again
// once Redis was found unavailable: a paused (SIGSTOP) Redis costs one
// timeout per decision, and the degradation answers.
func TestSharedOneRoundTripPerDecision(t *testing.T) {
	srv := redistest.Start(t)
	c := newClock()
	s := openShared(t, srv, "rt:", c, SharedOptions{Timeout: 100 * time.Millisecond, Fingerprint: Monitor, Replay: AllowWithReason})
	calls := &countCalls{}
	s.rdb().AddHook(calls)
	ctx := context.Background()
	if err := s.RecordFingerprint(ctx, "h", Sighting{IP: netip.MustParseAddr("203.0.113.7"), UserAgent: "ua", ExpiresAt: c.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	t.Run("ok/the fingerprint is asked once per decision", func(t *testing.T) {
		nctx, _ := WithNotes(ctx)
		before := calls.n.Load()
		for range 3 {
			if _, found, err := s.LastSeen(nctx, "h"); err != nil || !found {
				t.Fatalf("LastSeen = %v, %v", found, err)
			}
		}
		if n := calls.n.Load() - before; n != 1 {
			t.Errorf("%d round trips, want 1", n)
		}
	})

	srv.Pause()
	t.Run("ok/a paused Redis is asked once per decision, and the degradation answers", func(t *testing.T) {
		for d := range 3 {
			nctx, notes := WithNotes(ctx)
			before := calls.n.Load()
			for range 2 { // the revalidation of a kept decision, then the evaluation
				if _, _, err := s.LastSeen(nctx, "h"); err != nil {
					t.Fatalf("decision %d: LastSeen = %v", d, err)
				}
			}
			if fresh, err := s.SpendDPoPJTI(nctx, fmt.Sprint("k", d), c.Now().Add(time.Minute)); err != nil || !fresh {
				t.Fatalf("decision %d: spend = %v, %v", d, fresh, err)
			}
			if n := calls.n.Load() - before; n != 1 {
				t.Errorf("decision %d: %d round trips, want 1", d, n)
			}
			if e := notes.Entries(); len(e) != 2 || notes.Denied() {
				t.Errorf("decision %d: notes %+v, want fingerprint and replay once each, allowed", d, e)
			}
		}
	})
	t.Run("ok/a call leaves a decision with a deadline the time to answer", func(t *testing.T) {
		// The decision has less time left than the Redis timeout: the call
		// gives up first, and the degradation answers before the deadline.
		for i := range 5 {
			dctx, cancel := context.WithTimeout(ctx, 80*time.Millisecond)
			nctx, notes := WithNotes(dctx)
			_, _, err := s.LastSeen(nctx, fmt.Sprint("other-", i))
			deadline := dctx.Err()
			cancel()
			if err != nil {
				t.Fatalf("LastSeen = %v, want the monitor degradation", err)
			}
			if deadline != nil || len(notes.Entries()) != 1 {
				t.Errorf("deadline %v, notes %+v", deadline, notes.Entries())
			}
		}
	})
}
