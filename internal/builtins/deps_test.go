package builtins

import (
	"context"
	"net/netip"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tokenguard/pdp/internal/store"
)

// counting is a store that counts the look-ups made through it; it keeps
// the store's versions (store.Bolt's methods are promoted).
type counting struct {
	*store.Bolt
	lookups atomic.Int64
}

func (c *counting) CheckRevocation(ctx context.Context, ref store.TokenRef) (store.Revocation, bool, error) {
	c.lookups.Add(1)
	return c.Bolt.CheckRevocation(ctx, ref)
}

func (c *counting) LastSeen(ctx context.Context, h string) (store.Fingerprint, bool, error) {
	c.lookups.Add(1)
	return c.Bolt.LastSeen(ctx, h)
}

// unversioned hides the store's versions.
type unversioned struct{ Reader }

// TestDepsTrustVersionsOnlyWhileNothingChanged records what the built-ins
// answered, changes the store or its clock, and checks when Unchanged looks
// the answers up again and what it concludes.
func TestDepsTrustVersionsOnlyWhileNothingChanged(t *testing.T) {
	const hash = "h4sh"
	tests := []struct {
		name      string
		revoked   bool // alice is revoked (for 1h) before the evaluation
		seen      bool // the token was seen (fingerprint expiring in 1h) before
		hide      bool // the store does not offer versions
		change    func(t *testing.T, s *store.Bolt, clock *atomic.Int64)
		lookups   int64
		again     int64 // look-ups of a second Unchanged, when unchanged
		unchanged bool
		fails     bool
	}{
		{name: "nothing written: the answers hold without a look-up", seen: true, unchanged: true},
		{
			name: "a revocation of the subject: looked up again, changed",
			change: func(t *testing.T, s *store.Bolt, _ *atomic.Int64) {
				revoke(t, s, "alice", time.Hour)
			},
			lookups: 1,
		},
		{
			name: "a revocation of someone else: looked up again, unchanged",
			change: func(t *testing.T, s *store.Bolt, _ *atomic.Int64) {
				revoke(t, s, "bob", time.Hour)
			},
			lookups: 1, again: 0, unchanged: true, // stamped anew
		},
		{
			name: "the revocation answered expires: looked up again, changed", revoked: true,
			change: func(_ *testing.T, _ *store.Bolt, clock *atomic.Int64) {
				clock.Add(int64(2 * time.Hour))
			},
			lookups: 1,
		},
		{
			name: "a sighting of the token: looked up again, changed", seen: true,
			change: func(t *testing.T, s *store.Bolt, _ *atomic.Int64) {
				see(t, s, hash, "198.51.100.9")
			},
			lookups: 1, // the revocation's version did not move
		},
		{
			name: "the fingerprint answered expires: looked up again, changed", seen: true,
			change: func(_ *testing.T, _ *store.Bolt, clock *atomic.Int64) {
				clock.Add(int64(2 * time.Hour))
			},
			lookups: 1,
		},
		{name: "a store without versions: always looked up, unchanged", seen: true, hide: true, lookups: 2, again: 2, unchanged: true},
		{
			name: "a closed store: looked up, and the look-up fails", seen: true,
			change: func(t *testing.T, s *store.Bolt, _ *atomic.Int64) {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			},
			lookups: 1, fails: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var clock atomic.Int64
			clock.Store(now.UnixNano())
			bolt, err := store.OpenBolt(t.TempDir(), store.BoltOptions{Now: func() time.Time { return time.Unix(0, clock.Load()) }})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { bolt.Close() })
			if tt.revoked {
				revoke(t, bolt, "alice", time.Hour)
			}
			if tt.seen {
				see(t, bolt, hash, "203.0.113.7")
			}
			c := &counting{Bolt: bolt}
			var r Reader = c
			if tt.hide {
				r = unversioned{c}
			}
			SetStore(r)
			t.Cleanup(func() { SetStore(nil) })

			d := &Deps{}
			ctx := Track(context.Background(), d)
			q := `r := pdp.revocation({"iss": "` + iss + `", "sub": "alice", "iat": ` + strconv.FormatInt(now.Add(-time.Minute).Unix(), 10) + `})`
			if tt.seen {
				q += `; y := pdp.last_seen("` + hash + `")`
			}
			if _, err := rego.New(rego.Query(q), rego.StrictBuiltinErrors(true)).Eval(ctx); err != nil {
				t.Fatal(err)
			}
			c.lookups.Store(0)
			if tt.change != nil {
				tt.change(t, bolt, &clock)
			}
			unchanged, err := d.Unchanged(context.Background())
			if (err != nil) != tt.fails {
				t.Fatalf("Unchanged: %v, want an error: %v", err, tt.fails)
			}
			if unchanged != tt.unchanged {
				t.Errorf("Unchanged = %v, want %v", unchanged, tt.unchanged)
			}
			if got := c.lookups.Load(); got != tt.lookups {
				t.Errorf("%d look-ups, want %d", got, tt.lookups)
			}
			if !unchanged {
				return
			}
			c.lookups.Store(0)
			if again, err := d.Unchanged(context.Background()); err != nil || !again {
				t.Fatalf("second Unchanged = %v, %v", again, err)
			}
			if got := c.lookups.Load(); got != tt.again {
				t.Errorf("second Unchanged: %d look-ups, want %d", got, tt.again)
			}
		})
	}
}

func revoke(t *testing.T, s *store.Bolt, sub string, ttl time.Duration) {
	t.Helper()
	if _, err := s.PutRevocation(context.Background(), store.Revocation{
		Kind: store.KindSubject, Issuer: iss, Value: sub, ExpiresAt: now.Add(ttl),
	}); err != nil {
		t.Fatal(err)
	}
}

func see(t *testing.T, s *store.Bolt, hash, ip string) {
	t.Helper()
	if err := s.RecordFingerprint(context.Background(), hash, store.Sighting{
		At: now, IP: netip.MustParseAddr(ip), UserAgent: "t/1", ExpiresAt: now.Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
}
