//go:build integration

package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/redistest"
)

// openShared opens a shared store on srv with its own local data dir,
// driven by c, waits until it is ready and closes it when the test ends.
func openShared(t *testing.T, srv *redistest.Server, prefix string, c *clock, opts SharedOptions) *Shared {
	t.Helper()
	opts.Addrs, opts.KeyPrefix = []string{srv.Addr()}, prefix
	s := startShared(t, t.TempDir(), c, opts)
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

// startShared opens a shared store (opts names the servers and the prefix)
// over a bbolt file in dir, driven by c, and waits until it is ready. The
// caller closes it.
func startShared(t *testing.T, dir string, c *clock, opts SharedOptions) *Shared {
	t.Helper()
	local, err := OpenBolt(dir, BoltOptions{Now: c.Now, LockTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	opts.Now = c.Now
	if opts.Timeout == 0 {
		opts.Timeout = time.Second // generous: CI machines stall
	}
	if opts.BlockFor == 0 {
		opts.BlockFor = 200 * time.Millisecond
	}
	s, err := OpenShared(local, opts)
	if err != nil {
		_ = local.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		_ = s.Close()
		t.Fatalf("shared store never ready: %v (%+v)", err, s.Status())
	}
	return s
}

func TestSharedConformance(t *testing.T) {
	srv := redistest.Start(t)
	n := 0
	testConformance(t, func(t *testing.T, c *clock) Store {
		n++
		return openShared(t, srv, fmt.Sprintf("t%d:", n), c, SharedOptions{})
	})
}

func TestSharedDPoPJTISpentReadsWithoutSpending(t *testing.T) {
	srv := redistest.Start(t)
	c := newClock()
	testDPoPJTISpent(t, openShared(t, srv, "jti:", c, SharedOptions{}), c)
}

// eventually polls cond for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 5s", what)
}

func TestSharedReplicatesRevocations(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := newClock()
	a := openShared(t, srv, "rep:", c, SharedOptions{})
	b := openShared(t, srv, "rep:", c, SharedOptions{})
	ref := TokenRef{Issuer: iss, Subject: "alice", IssuedAt: c.Now().Add(-time.Minute)}

	t.Run("ok/a revocation written through one replica applies on the other", func(t *testing.T) {
		if _, err := a.PutRevocation(ctx, Revocation{ID: "r1", Kind: KindSubject, Issuer: iss, Value: "alice", ExpiresAt: c.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "revocation on replica b", func() bool { _, ok, _ := b.CheckRevocation(ctx, ref); return ok })
	})
	t.Run("ok/a deletion replicates too", func(t *testing.T) {
		if err := b.DeleteRevocation(ctx, "r1"); err != nil {
			t.Fatal(err)
		}
		eventually(t, "deletion on replica a", func() bool { _, ok, _ := a.CheckRevocation(ctx, ref); return !ok })
	})
	t.Run("ok/a replica opened later catches up before it is ready", func(t *testing.T) {
		if _, err := a.PutRevocations(ctx, []Revocation{
			{ID: "j1", Kind: KindJTI, Issuer: iss, Value: "jti-1", ExpiresAt: c.Now().Add(time.Hour)},
			{ID: "s1", Kind: KindSession, Issuer: iss, Value: "sid-1", ExpiresAt: c.Now().Add(time.Hour)},
		}); err != nil {
			t.Fatal(err)
		}
		late := openShared(t, srv, "rep:", c, SharedOptions{})
		list, err := late.ListRevocations(ctx, RevocationFilter{})
		if err != nil || len(list) != 2 {
			t.Fatalf("late replica holds %+v, %v; want 2 revocations", list, err)
		}
	})
}

func TestSharedResumesFromTheStreamAfterARestart(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := newClock()
	a := openShared(t, srv, "resume:", c, SharedOptions{})
	dir := t.TempDir()
	open := func() *Shared {
		return startShared(t, dir, c, SharedOptions{Addrs: []string{srv.Addr()}, KeyPrefix: "resume:"})
	}
	b := open()
	put := func(id string) {
		if _, err := a.PutRevocation(ctx, Revocation{ID: id, Kind: KindJTI, Issuer: iss, Value: id, ExpiresAt: c.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	put("before")
	eventually(t, "first revocation on b", func() bool { _, err := b.GetRevocation(ctx, "before"); return err == nil })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	put("while-down")
	b = open()
	defer b.Close()
	if _, err := b.GetRevocation(ctx, "while-down"); err != nil {
		t.Fatalf("revocation written while the replica was down: %v", err)
	}
	if st := b.Status(); st.Resyncs != 0 {
		t.Errorf("resumed with %d full resyncs, want 0 (the stream still held the entries)", st.Resyncs)
	}
}

func TestSharedResyncsWhenTheStreamWasTrimmed(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := newClock()
	a := openShared(t, srv, "trim:", c, SharedOptions{StreamMaxLen: 10})
	dir := t.TempDir()
	opts := SharedOptions{Addrs: []string{srv.Addr()}, KeyPrefix: "trim:", StreamMaxLen: 10}
	b := startShared(t, dir, c, opts)
	_, _ = a.PutRevocation(ctx, Revocation{ID: "gone", Kind: KindJTI, Issuer: iss, Value: "gone", ExpiresAt: c.Now().Add(time.Hour)})
	eventually(t, "first revocation on b", func() bool { _, err := b.GetRevocation(ctx, "gone"); return err == nil })
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.DeleteRevocation(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	for i := range 500 {
		if _, err := a.PutRevocation(ctx, Revocation{ID: fmt.Sprint("r", i), Kind: KindJTI, Issuer: iss, Value: fmt.Sprint("v", i), ExpiresAt: c.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	b = startShared(t, dir, c, opts)
	defer b.Close()
	if st := b.Status(); st.Resyncs != 1 {
		t.Errorf("resyncs = %d, want 1", st.Resyncs)
	}
	if _, err := b.GetRevocation(ctx, "gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("a deletion lost in the trimmed stream was not applied: %v", err)
	}
	list, _ := b.ListRevocations(ctx, RevocationFilter{})
	if len(list) != 500 {
		t.Errorf("%d revocations after resync, want 500", len(list))
	}
}

func TestSharedUnavailable(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := newClock()
	var reported []string
	s := openShared(t, srv, "down:", c, SharedOptions{
		Timeout:       100 * time.Millisecond,
		Replay:        Deny,
		Fingerprint:   Monitor,
		OnUnavailable: func(ch Check, allowed bool) { reported = append(reported, fmt.Sprint(ch, "/", allowed)) },
	})
	if _, err := s.PutRevocation(ctx, Revocation{ID: "r1", Kind: KindJTI, Issuer: iss, Value: "j1", ExpiresAt: c.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	srv.Kill()

	t.Run("ok/revocations are still read from the local view", func(t *testing.T) {
		if _, ok, err := s.CheckRevocation(ctx, TokenRef{Issuer: iss, JTI: "j1"}); err != nil || !ok {
			t.Fatalf("check = %v, %v", ok, err)
		}
	})
	t.Run("fail/replay check denies, noted", func(t *testing.T) {
		nctx, notes := WithNotes(ctx)
		start := time.Now()
		_, err := s.SpendDPoPJTI(nctx, "k", c.Now().Add(time.Minute))
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
		if !notes.Denied() {
			t.Error("not noted as denied")
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("the call hung for %s", d)
		}
	})
	t.Run("ok/fingerprint lookup degrades to not seen, noted", func(t *testing.T) {
		nctx, notes := WithNotes(ctx)
		_, ok, err := s.LastSeen(nctx, "h")
		if err != nil || ok {
			t.Fatalf("LastSeen = %v, %v", ok, err)
		}
		if e := notes.Entries(); len(e) != 1 || e[0].Check != CheckFingerprint || !e[0].Allowed {
			t.Errorf("notes = %+v", e)
		}
	})
	t.Run("fail/revocation writes fail", func(t *testing.T) {
		if _, err := s.PutRevocation(ctx, Revocation{Kind: KindJTI, Issuer: iss, Value: "j2", ExpiresAt: c.Now().Add(time.Hour)}); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ok/ready and reporting staleness while down", func(t *testing.T) {
		eventually(t, "disconnected", func() bool { return !s.Status().Connected })
		if err := s.Ready(); err != nil {
			t.Errorf("not ready while Redis is down: %v", err)
		}
	})
	t.Run("ok/allow_with_reason lets the replay check pass", func(t *testing.T) {
		s.opts.Replay = AllowWithReason
		defer func() { s.opts.Replay = Deny }()
		nctx, notes := WithNotes(ctx)
		fresh, err := s.SpendDPoPJTI(nctx, "k", c.Now().Add(time.Minute))
		if err != nil || !fresh || notes.Denied() || len(notes.Entries()) != 1 {
			t.Fatalf("spend = %v, %v, notes %+v", fresh, err, notes.Entries())
		}
	})
	if len(reported) == 0 {
		t.Error("nothing reported to OnUnavailable")
	}

	t.Run("ok/Redis back: the replica reconnects and catches up", func(t *testing.T) {
		srv.Start()
		eventually(t, "reconnected", func() bool { st := s.Status(); return st.Connected && st.Ready })
		other := openShared(t, srv, "down:", c, SharedOptions{})
		if _, err := other.PutRevocation(ctx, Revocation{ID: "r3", Kind: KindJTI, Issuer: iss, Value: "j3", ExpiresAt: c.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "revocation after reconnect", func() bool { _, ok, _ := s.CheckRevocation(ctx, TokenRef{Issuer: iss, JTI: "j3"}); return ok })
		if _, ok, _ := other.CheckRevocation(ctx, TokenRef{Issuer: iss, JTI: "j1"}); !ok {
			t.Error("revocation from before the outage lost")
		}
	})
}

func TestSharedSeedsRedisWithLocalRevocations(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := newClock()
	dir := t.TempDir()
	local, err := OpenBolt(dir, BoltOptions{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := local.PutRevocation(ctx, Revocation{ID: "old", Kind: KindSubject, Issuer: iss, Value: "mallory", ExpiresAt: c.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	s, err := OpenShared(local, SharedOptions{Addrs: []string{srv.Addr()}, KeyPrefix: "seed:", Now: c.Now, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := s.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	other := openShared(t, srv, "seed:", c, SharedOptions{})
	if _, err := other.GetRevocation(ctx, "old"); err != nil {
		t.Fatalf("a revocation held only locally when switching to Redis was lost: %v", err)
	}
}

func TestSharedStartingWithoutRedisIsNotReadyUntilItCaughtUp(t *testing.T) {
	srv := redistest.Start(t)
	c := newClock()
	writer := openShared(t, srv, "late:", c, SharedOptions{})
	if _, err := writer.PutRevocation(context.Background(), Revocation{ID: "r1", Kind: KindJTI, Issuer: iss, Value: "j1", ExpiresAt: c.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	srv.Kill()
	local, err := OpenBolt(t.TempDir(), BoltOptions{Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenShared(local, SharedOptions{Addrs: []string{srv.Addr()}, KeyPrefix: "late:", Now: c.Now, Timeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	time.Sleep(300 * time.Millisecond)
	if err := s.Ready(); err == nil {
		t.Fatal("ready without ever reaching Redis")
	}
	if st := s.Status(); st.Connected || st.Ready || st.LastError == "" {
		t.Errorf("status = %+v", st)
	}
	srv.Start()
	eventually(t, "ready once Redis answers", func() bool { return s.Ready() == nil })
	if _, err := s.GetRevocation(context.Background(), "r1"); err != nil {
		t.Fatalf("caught up without the revocation: %v", err)
	}
}

// TestSharedOnACluster runs the conformance suite and the replication of
// revocations against a three-master Redis Cluster: every script's keys
// share one slot, and the client follows the slots.
func TestSharedOnACluster(t *testing.T) {
	nodes := redistest.StartCluster(t, 3)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.Addr())
	}
	open := func(t *testing.T, prefix string, c *clock) *Shared {
		t.Helper()
		s := startShared(t, t.TempDir(), c, SharedOptions{Addrs: addrs, KeyPrefix: prefix})
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	n := 0
	t.Run("conformance", func(t *testing.T) {
		testConformance(t, func(t *testing.T, c *clock) Store {
			n++
			return open(t, fmt.Sprintf("c%d:", n), c)
		})
	})
	t.Run("ok/revocations replicate", func(t *testing.T) {
		c := newClock()
		a, b := open(t, "crep:", c), open(t, "crep:", c)
		if _, err := a.PutRevocation(context.Background(), Revocation{ID: "r1", Kind: KindSubject, Issuer: iss, Value: "alice", ExpiresAt: c.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		eventually(t, "revocation on b", func() bool { _, err := b.GetRevocation(context.Background(), "r1"); return err == nil })
	})
}

// TestSharedThroughSentinel finds the master through a Sentinel.
func TestSharedThroughSentinel(t *testing.T) {
	master := redistest.Start(t)
	sentinel := redistest.StartSentinel(t, master)
	c := newClock()
	open := func() *Shared {
		s := startShared(t, t.TempDir(), c, SharedOptions{Addrs: []string{sentinel.Addr()}, MasterName: "mymaster", KeyPrefix: "sen:"})
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	a, b := open(), open()
	ctx := context.Background()
	if _, err := a.PutRevocation(ctx, Revocation{ID: "r1", Kind: KindJTI, Issuer: iss, Value: "j1", ExpiresAt: c.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "revocation on b", func() bool { _, err := b.GetRevocation(ctx, "r1"); return err == nil })
	if fresh, err := a.SpendDPoPJTI(ctx, "k", c.Now().Add(time.Minute)); err != nil || !fresh {
		t.Fatalf("spend = %v, %v", fresh, err)
	}
	if fresh, err := b.SpendDPoPJTI(ctx, "k", c.Now().Add(time.Minute)); err != nil || fresh {
		t.Fatalf("replay through the other replica = %v, %v", fresh, err)
	}
}

func TestSharedSweepRemovesExpiredRevocationsFromRedis(t *testing.T) {
	ctx := context.Background()
	srv := redistest.Start(t)
	c := newClock()
	s := openShared(t, srv, "sweep:", c, SharedOptions{})
	if _, err := s.PutRevocations(ctx, []Revocation{
		{ID: "short", Kind: KindJTI, Issuer: iss, Value: "j1", ExpiresAt: c.Now().Add(time.Minute)},
		{ID: "long", Kind: KindJTI, Issuer: iss, Value: "j2", ExpiresAt: c.Now().Add(time.Hour)},
	}); err != nil {
		t.Fatal(err)
	}
	c.Advance(2 * time.Minute)
	n, err := s.Sweep(ctx, c.Now())
	if err != nil || n != 2 { // one in the local view, one in Redis
		t.Fatalf("Sweep = %d, %v; want 2", n, err)
	}
	fields, err := s.rdb().HKeys(ctx, s.keys.revHash(KindJTI)).Result()
	if err != nil || len(fields) != 1 {
		t.Fatalf("jti hash fields = %q, %v; want only the live one", fields, err)
	}
	if ids, _ := s.rdb().HKeys(ctx, s.keys.revIDs).Result(); len(ids) != 1 || ids[0] != "long" {
		t.Errorf("id index = %q", ids)
	}
}
