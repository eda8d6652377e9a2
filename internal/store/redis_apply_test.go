package store

import (
	"context"
	"testing"
	"time"
)

// TestSharedApplyKeepsNewerRevocations runs the local half of the shared
// store, which needs no Redis: stream entries applied in order, and replayed
// after this replica's own newer writes.
func TestSharedApplyKeepsNewerRevocations(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := &Shared{local: openTest(t, c), opts: SharedOptions{Now: c.Now}}
	first := Revocation{ID: "x", Kind: KindSubject, Issuer: iss, Value: "alice", CreatedAt: c.Now(), NotBefore: c.Now(), ExpiresAt: c.Now().Add(time.Hour)}
	c.Advance(time.Second)
	second := first
	second.CreatedAt, second.NotBefore = c.Now(), c.Now()

	t.Run("ok/entries in order: put, delete, put again with the same id", func(t *testing.T) {
		if err := s.applyOps([]streamOp{{r: first}, {del: true, r: first}, {r: second}}, "1-0"); err != nil {
			t.Fatal(err)
		}
		got, err := s.GetRevocation(ctx, "x")
		if err != nil || !got.CreatedAt.Equal(second.CreatedAt) {
			t.Fatalf("GetRevocation = %+v, %v; want the second revocation", got, err)
		}
		if id, _ := s.appliedID(); id != "1-0" {
			t.Errorf("applied id = %q", id)
		}
	})
	t.Run("ok/an older deletion replayed after a newer local write leaves it alone", func(t *testing.T) {
		if err := s.applyOps([]streamOp{{del: true, r: first}}, "2-0"); err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := s.CheckRevocation(ctx, TokenRef{Issuer: iss, Subject: "alice", IssuedAt: first.CreatedAt.Add(-time.Minute)}); !ok {
			t.Fatal("an older deletion removed a newer revocation")
		}
	})
	t.Run("ok/the deletion of the revocation itself applies", func(t *testing.T) {
		if err := s.applyOps([]streamOp{{del: true, r: second}}, "3-0"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetRevocation(ctx, "x"); err == nil {
			t.Fatal("deleted revocation still there")
		}
	})
	t.Run("ok/expired entries are skipped, a resync replaces everything", func(t *testing.T) {
		old := Revocation{ID: "old", Kind: KindJTI, Issuer: iss, Value: "j-old", CreatedAt: c.Now(), NotBefore: c.Now(), ExpiresAt: c.Now().Add(-time.Second)}
		keep := Revocation{ID: "keep", Kind: KindJTI, Issuer: iss, Value: "j-keep", CreatedAt: c.Now(), NotBefore: c.Now(), ExpiresAt: c.Now().Add(time.Hour)}
		if err := s.applyOps([]streamOp{{r: old}, {r: keep}}, "4-0"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.GetRevocation(ctx, "old"); err == nil {
			t.Error("an expired entry was applied")
		}
		fresh := Revocation{ID: "fresh", Kind: KindClient, Issuer: iss, Value: "app", CreatedAt: c.Now(), NotBefore: c.Now(), ExpiresAt: c.Now().Add(time.Hour)}
		if err := s.replaceLocal([]Revocation{fresh}, "9-0"); err != nil {
			t.Fatal(err)
		}
		list, _ := s.ListRevocations(ctx, RevocationFilter{})
		if len(list) != 1 || list[0].ID != "fresh" {
			t.Fatalf("after resync: %+v", list)
		}
		if n := ttlEntries(t, s.local); n != 1 {
			t.Errorf("%d TTL entries after resync, want 1", n)
		}
	})
}
