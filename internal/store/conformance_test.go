package store

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// opener opens a fresh, empty store driven by the clock c.
type opener func(t *testing.T, c *clock) Store

func TestBoltConformance(t *testing.T) {
	testConformance(t, func(t *testing.T, c *clock) Store { return openTest(t, c) })
}

// testConformance runs the behaviour every Store must share against the
// stores open returns: the same table of cases for bbolt and for the shared
// (Redis) store.
func testConformance(t *testing.T, open opener) {
	ctx := context.Background()

	t.Run("replay", func(t *testing.T) {
		t.Run("ok/a proof is fresh once, then replayed until it expires", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			exp := c.Now().Add(time.Minute)
			for i, want := range []bool{true, false, false} {
				fresh, err := s.SpendDPoPJTI(ctx, "k1", exp.Add(time.Duration(i)*time.Hour))
				if err != nil || fresh != want {
					t.Fatalf("spend %d = %v, %v; want %v", i, fresh, err, want)
				}
			}
			if fresh, _ := s.SpendDPoPJTI(ctx, "k2", exp); !fresh {
				t.Fatal("another key is not fresh")
			}
			c.Advance(time.Minute)
			if fresh, _ := s.SpendDPoPJTI(ctx, "k1", c.Now().Add(time.Minute)); !fresh {
				t.Fatal("key not fresh again after its expiry")
			}
		})
		t.Run("fail/invalid keys and expiries", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			for _, tt := range []struct {
				key string
				exp time.Time
			}{{"", c.Now().Add(time.Minute)}, {string(make([]byte, MaxKeyLen+1)), c.Now().Add(time.Minute)}, {"k", c.Now().Add(-time.Second)}} {
				if _, err := s.SpendDPoPJTI(ctx, tt.key, tt.exp); !errors.Is(err, ErrInvalid) {
					t.Errorf("err = %v, want ErrInvalid", err)
				}
			}
		})
		t.Run("ok/concurrent spends: exactly one is fresh", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			var fresh atomic.Int64
			var wg sync.WaitGroup
			for range 32 {
				wg.Go(func() {
					ok, err := s.SpendDPoPJTI(ctx, "same", c.Now().Add(time.Minute))
					if err != nil {
						t.Error(err)
					}
					if ok {
						fresh.Add(1)
					}
				})
			}
			wg.Wait()
			if fresh.Load() != 1 {
				t.Fatalf("%d fresh spends, want 1", fresh.Load())
			}
		})
	})

	t.Run("set replay", func(t *testing.T) {
		t.Run("ok/a remembered SET is seen until its expiry", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			seen := func(key string) bool {
				t.Helper()
				ok, err := s.SETSeen(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				return ok
			}
			if seen("set1") {
				t.Fatal("a SET never remembered is seen")
			}
			if err := s.RememberSET(ctx, "set1", c.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
			if err := s.RememberSET(ctx, "set1", c.Now().Add(time.Hour)); err != nil {
				t.Fatalf("remembering a SET twice: %v", err)
			}
			if !seen("set1") || seen("set2") {
				t.Fatal("seen: want set1 only")
			}
			if fresh, _ := s.SpendDPoPJTI(ctx, "set1", c.Now().Add(time.Minute)); !fresh {
				t.Fatal("a SET key is spent as a DPoP key: the two replay caches must not share keys")
			}
			c.Advance(time.Hour)
			if seen("set1") {
				t.Fatal("a SET is seen after its expiry")
			}
		})
		t.Run("fail/invalid keys and expiries", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			for _, tt := range []struct {
				key string
				exp time.Time
			}{{"", c.Now().Add(time.Minute)}, {string(make([]byte, MaxKeyLen+1)), c.Now().Add(time.Minute)}, {"k", c.Now().Add(-time.Second)}} {
				if err := s.RememberSET(ctx, tt.key, tt.exp); !errors.Is(err, ErrInvalid) {
					t.Errorf("RememberSET err = %v, want ErrInvalid", err)
				}
			}
			if _, err := s.SETSeen(ctx, ""); !errors.Is(err, ErrInvalid) {
				t.Errorf("SETSeen err = %v, want ErrInvalid", err)
			}
		})
	})

	// Expiries computed from a token's or an event's numbers may lie past
	// what the store can hold (April 2262): every write clamps them instead
	// of refusing, so such a token can always be revoked.
	t.Run("expiry clamp", func(t *testing.T) {
		far := time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)
		for _, tt := range []struct {
			name  string
			write func(s Store, c *clock) (time.Time, error)
		}{
			{"ok/a revocation expiring in the year 9999", func(s Store, c *clock) (time.Time, error) {
				r, err := s.PutRevocation(ctx, Revocation{Kind: KindJTI, Issuer: iss, Value: "far", ExpiresAt: far})
				if err == nil {
					if _, ok, err := s.CheckRevocation(ctx, TokenRef{Issuer: iss, JTI: "far"}); !ok || err != nil {
						return r.ExpiresAt, fmt.Errorf("clamped revocation not found: %v, %v", ok, err)
					}
				}
				return r.ExpiresAt, err
			}},
			{"ok/a cut-off plus a TTL past 2262", func(s Store, c *clock) (time.Time, error) {
				r, err := s.PutRevocation(ctx, Revocation{Kind: KindSession, Issuer: iss, Value: "s", ExpiresAt: MaxExpiry.Add(720 * time.Hour)})
				return r.ExpiresAt, err
			}},
			{"ok/a refresh-token family living past 2262", func(s Store, c *clock) (time.Time, error) {
				f, err := s.CreateFamily(ctx, Family{ID: "far", Current: "rt-far", Issuer: iss, Subject: "alice", ExpiresAt: far})
				return f.ExpiresAt, err
			}},
			{"ok/a refresh token used in a family living past 2262", func(s Store, c *clock) (time.Time, error) {
				f, err := s.UseRefreshToken(ctx, Family{ID: "far2", Issuer: iss, Subject: "alice", ExpiresAt: far}, "rt-far2")
				return f.ExpiresAt, err
			}},
			{"ok/a SET remembered past 2262", func(s Store, c *clock) (time.Time, error) {
				if err := s.RememberSET(ctx, "far", far); err != nil {
					return time.Time{}, err
				}
				if ok, err := s.SETSeen(ctx, "far"); !ok || err != nil {
					return time.Time{}, fmt.Errorf("clamped SET not seen: %v, %v", ok, err)
				}
				return MaxExpiry, nil
			}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				c := newClock()
				s := open(t, c)
				got, err := tt.write(s, c)
				if err != nil {
					t.Fatalf("write = %v, want the expiry clamped", err)
				}
				if !got.Equal(MaxExpiry) {
					t.Errorf("expiry = %v, want %v", got, MaxExpiry)
				}
			})
		}
	})

	t.Run("fingerprint", func(t *testing.T) {
		c := newClock()
		s := open(t, c)
		start := c.Now()
		exp := start.Add(time.Hour)
		if _, ok, err := s.LastSeen(ctx, "h"); err != nil || ok {
			t.Fatalf("LastSeen before any record = %v, %v", ok, err)
		}
		record := func(sg Sighting) {
			t.Helper()
			if err := s.RecordFingerprint(ctx, "h", sg); err != nil {
				t.Fatal(err)
			}
		}
		record(Sighting{IP: netip.MustParseAddr("192.0.2.17"), UserAgent: "curl/8", ExpiresAt: exp})
		c.Advance(time.Minute)
		record(Sighting{IP: netip.MustParseAddr("2001:db8:aa:bbcc::1"), UserAgent: "firefox", ExpiresAt: exp})
		want := Fingerprint{
			FirstSeen: start, LastSeen: start.Add(time.Minute),
			IP: "2001:db8:aa:bbcc::1", Prefix: "2001:db8:aa:bb00::/56",
			UAHash: HashUserAgent("firefox"), Count: 2, ExpiresAt: exp,
		}
		if fp, ok, err := s.LastSeen(ctx, "h"); err != nil || !ok || fp != want {
			t.Fatalf("fingerprint = %+v, %v, %v\nwant %+v", fp, ok, err, want)
		}
		t.Run("ok/an overtaken sighting counts but keeps the latest client", func(t *testing.T) {
			record(Sighting{At: start.Add(-time.Minute), IP: netip.MustParseAddr("198.51.100.1"), UserAgent: "old", ExpiresAt: exp.Add(time.Hour)})
			fp, _, _ := s.LastSeen(ctx, "h")
			if fp.Count != 3 || !fp.FirstSeen.Equal(start.Add(-time.Minute)) || fp.IP != want.IP || fp.UAHash != want.UAHash || !fp.ExpiresAt.Equal(exp.Add(time.Hour)) {
				t.Errorf("fingerprint = %+v", fp)
			}
		})
		t.Run("ok/ignored once the token expired, then starts afresh", func(t *testing.T) {
			c.Advance(3 * time.Hour)
			if _, ok, _ := s.LastSeen(ctx, "h"); ok {
				t.Fatal("expired fingerprint returned")
			}
			record(Sighting{ExpiresAt: c.Now().Add(time.Hour)})
			fp, ok, _ := s.LastSeen(ctx, "h")
			if !ok || fp.Count != 1 || fp.IP != "" || fp.Prefix != "" || !fp.FirstSeen.Equal(c.Now()) {
				t.Errorf("fresh fingerprint = %+v", fp)
			}
		})
	})

	t.Run("pending sightings", func(t *testing.T) {
		a, b := netip.MustParseAddr("198.51.100.7"), netip.MustParseAddr("203.0.113.50")
		t.Run("ok/a noted sighting is seen at once, before its write, and after its release", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			exp := c.Now().Add(time.Hour)
			release, err := s.NoteSighting("h", Sighting{IP: a, UserAgent: "app/1", ExpiresAt: exp})
			if err != nil {
				t.Fatal(err)
			}
			fp, ok, err := s.LastSeen(ctx, "h")
			if err != nil || !ok || fp.IP != a.String() || fp.Prefix != "198.51.100.0/24" || fp.UAHash != HashUserAgent("app/1") || fp.Count != 1 {
				t.Fatalf("noted, not written: %+v, %v, %v", fp, ok, err)
			}
			if err := s.RecordFingerprint(ctx, "h", Sighting{IP: a, UserAgent: "app/1", ExpiresAt: exp}); err != nil {
				t.Fatal(err)
			}
			release()
			release() // a second release changes nothing
			if fp, ok, _ := s.LastSeen(ctx, "h"); !ok || fp.IP != a.String() || fp.Count != 1 {
				t.Fatalf("written and released: %+v, %v", fp, ok)
			}
		})
		t.Run("ok/a later noted sighting is the latest client over a stored one", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			exp := c.Now().Add(time.Hour)
			start := c.Now()
			if err := s.RecordFingerprint(ctx, "h", Sighting{IP: a, UserAgent: "app/1", ExpiresAt: exp}); err != nil {
				t.Fatal(err)
			}
			c.Advance(time.Second)
			release, err := s.NoteSighting("h", Sighting{IP: b, UserAgent: "app/1", ExpiresAt: exp})
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			fp, ok, err := s.LastSeen(ctx, "h")
			if err != nil || !ok || fp.IP != b.String() || !fp.FirstSeen.Equal(start) || fp.Count != 2 {
				t.Fatalf("fingerprint = %+v, %v, %v", fp, ok, err)
			}
		})
		t.Run("ok/a released sighting that was never written is gone", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			release, err := s.NoteSighting("h", Sighting{IP: a, ExpiresAt: c.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			release()
			if _, ok, err := s.LastSeen(ctx, "h"); err != nil || ok {
				t.Fatalf("released, never written: %v, %v", ok, err)
			}
		})
		t.Run("ok/a noted sighting is ignored once the token expired", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			release, err := s.NoteSighting("h", Sighting{IP: a, ExpiresAt: c.Now().Add(time.Minute)})
			if err != nil {
				t.Fatal(err)
			}
			defer release()
			c.Advance(time.Minute)
			if _, ok, err := s.LastSeen(ctx, "h"); err != nil || ok {
				t.Fatalf("expired pending sighting returned: %v, %v", ok, err)
			}
		})
		t.Run("fail/invalid hashes and expiries", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			for _, tt := range []struct {
				hash string
				exp  time.Time
			}{{"", c.Now().Add(time.Minute)}, {string(make([]byte, MaxKeyLen+1)), c.Now().Add(time.Minute)}, {"h", c.Now()}, {"h", time.Time{}}} {
				release, err := s.NoteSighting(tt.hash, Sighting{ExpiresAt: tt.exp})
				if !errors.Is(err, ErrInvalid) || release == nil {
					t.Errorf("NoteSighting(%q, %s) = %v, want ErrInvalid", tt.hash, tt.exp, err)
				}
			}
		})
		t.Run("ok/never missed while its write commits and it is released", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			exp := c.Now().Add(time.Hour)
			for i := range 200 {
				h := fmt.Sprintf("race-%d", i)
				release, err := s.NoteSighting(h, Sighting{IP: a, ExpiresAt: exp})
				if err != nil {
					t.Fatal(err)
				}
				var wg sync.WaitGroup
				wg.Go(func() {
					defer release()
					if err := s.RecordFingerprint(ctx, h, Sighting{IP: a, ExpiresAt: exp}); err != nil {
						t.Error(err)
					}
				})
				for range 4 {
					wg.Go(func() {
						for range 5 {
							if fp, ok, err := s.LastSeen(ctx, h); err != nil || !ok || fp.IP != a.String() {
								t.Errorf("%s missed: %+v, %v, %v", h, fp, ok, err)
								return
							}
						}
					})
				}
				wg.Wait()
			}
		})
	})

	t.Run("families", func(t *testing.T) {
		t.Run("ok/rotation, then reuse of a rotated-out token revokes the family", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			start := c.Now()
			exp := start.Add(24 * time.Hour)
			f, err := s.CreateFamily(ctx, Family{ID: "fam", Current: "rt1", Issuer: iss, Subject: "alice", SessionID: "sid", ExpiresAt: exp})
			if err != nil || !f.CreatedAt.Equal(start) || f.Revoked() {
				t.Fatalf("create = %+v, %v", f, err)
			}
			if _, err := s.CreateFamily(ctx, Family{ID: "fam", Current: "rt9", Issuer: iss, Subject: "alice", ExpiresAt: exp}); !errors.Is(err, ErrExists) {
				t.Fatalf("family id taken: err = %v, want ErrExists", err)
			}
			if _, err := s.CreateFamily(ctx, Family{ID: "other", Current: "rt1", Issuer: iss, Subject: "alice", ExpiresAt: exp}); !errors.Is(err, ErrExists) {
				t.Fatalf("token hash taken: err = %v, want ErrExists", err)
			}
			c.Advance(time.Minute)
			f, err = s.RotateFamily(ctx, "fam", "rt1", "rt2")
			if err != nil || f.Current != "rt2" || f.Rotations != 1 || !f.RotatedAt.Equal(c.Now()) || !f.ExpiresAt.Equal(exp) {
				t.Fatalf("rotate = %+v, %v", f, err)
			}
			for _, h := range []string{"rt1", "rt2"} {
				if got, err := s.FindFamily(ctx, h); err != nil || got.ID != "fam" || got.Current != "rt2" || got.SessionID != "sid" {
					t.Errorf("FindFamily(%s) = %+v, %v", h, got, err)
				}
			}
			if _, err := s.FindFamily(ctx, "rt9"); !errors.Is(err, ErrNotFound) {
				t.Errorf("FindFamily(unknown): err = %v", err)
			}
			if _, err := s.RotateFamily(ctx, "fam", "rt9", "rt10"); !errors.Is(err, ErrNotFound) {
				t.Errorf("unknown hash: err = %v, want ErrNotFound", err)
			}
			if _, err := s.RotateFamily(ctx, "fam", "rt2", "rt1"); !errors.Is(err, ErrExists) {
				t.Errorf("new hash taken: err = %v, want ErrExists", err)
			}
			if _, err := s.RotateFamily(ctx, "nope", "rt2", "rt3"); !errors.Is(err, ErrNotFound) {
				t.Errorf("unknown family: err = %v, want ErrNotFound", err)
			}
			c.Advance(time.Minute)
			f, err = s.RotateFamily(ctx, "fam", "rt1", "rt3")
			if !errors.Is(err, ErrRefreshReuse) || !f.RevokedAt.Equal(c.Now()) || f.SessionID != "sid" {
				t.Fatalf("reuse = %+v, %v; want ErrRefreshReuse with the revoked family", f, err)
			}
			if _, err := s.RotateFamily(ctx, "fam", "rt2", "rt3"); !errors.Is(err, ErrFamilyRevoked) {
				t.Fatalf("revoked family: err = %v, want ErrFamilyRevoked", err)
			}
			c.Advance(24 * time.Hour)
			if _, err := s.FindFamily(ctx, "rt2"); !errors.Is(err, ErrNotFound) {
				t.Errorf("expired family found: %v", err)
			}
		})
		t.Run("ok/every refresh token may be presented once", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			start := c.Now()
			fam := Family{ID: "fam-1", Issuer: iss, Subject: "alice", SessionID: "s1", ExpiresAt: start.Add(24 * time.Hour)}
			h := func(n int) string { return fmt.Sprintf("hash-%d", n) }
			f, err := s.UseRefreshToken(ctx, fam, h(1))
			if err != nil || f.Current != h(1) || f.Rotations != 0 {
				t.Fatalf("first token: %+v, %v", f, err)
			}
			c.Advance(time.Minute)
			if f, err = s.UseRefreshToken(ctx, fam, h(2)); err != nil || f.Current != h(2) || f.Rotations != 1 || !f.CreatedAt.Equal(start) || !f.RotatedAt.Equal(c.Now()) {
				t.Fatalf("second token: %+v, %v", f, err)
			}
			if f, err = s.UseRefreshToken(ctx, fam, h(1)); !errors.Is(err, ErrRefreshReuse) || !f.Revoked() || f.SessionID != "s1" {
				t.Fatalf("rotated-out token again: %+v, %v", f, err)
			}
			if _, err = s.UseRefreshToken(ctx, fam, h(3)); !errors.Is(err, ErrFamilyRevoked) {
				t.Fatalf("new token of a revoked family: %v", err)
			}
			if _, err = s.UseRefreshToken(ctx, fam, h(2)); !errors.Is(err, ErrRefreshReuse) {
				t.Fatalf("current token again: %v", err)
			}
		})
		t.Run("ok/reuse grace: the current token retried once from where it came, within the grace", func(t *testing.T) {
			here, there := Presentation{From: "client-a|198.51.100.0/24", Grace: 3 * time.Second}, Presentation{From: "client-a|203.0.113.0/24", Grace: 3 * time.Second}
			h := func(n int) string { return fmt.Sprintf("grace-hash-%d", n) }
			type use struct {
				name    string
				advance time.Duration
				hash    int
				p       Presentation
				want    error // nil: let through
				retried bool
			}
			for _, tt := range []struct {
				name string
				uses []use
			}{
				{"ok/first token retried within the grace, then rotation goes on", []use{
					{"first", 0, 1, here, nil, false},
					{"retry", 2 * time.Second, 1, here, nil, true},
					{"next token", time.Second, 2, here, nil, false},
					{"next token retried", time.Second, 2, here, nil, true},
				}},
				{"fail/a second retry is reuse", []use{
					{"first", 0, 1, here, nil, false},
					{"retry", time.Second, 1, here, nil, true},
					{"retry again", 0, 1, here, ErrRefreshReuse, false},
				}},
				{"fail/a retry after the grace is reuse", []use{
					{"first", 0, 1, here, nil, false},
					{"retry late", 3*time.Second + time.Millisecond, 1, here, ErrRefreshReuse, false},
				}},
				{"fail/a retry from another network is reuse", []use{
					{"first", 0, 1, here, nil, false},
					{"retry elsewhere", time.Second, 1, there, ErrRefreshReuse, false},
				}},
				{"fail/a rotated-out token within the grace is reuse", []use{
					{"first", 0, 1, here, nil, false},
					{"next token", time.Second, 2, here, nil, false},
					{"first again", 0, 1, here, ErrRefreshReuse, false},
				}},
				{"fail/without a grace a retry is reuse", []use{
					{"first", 0, 1, Presentation{From: here.From}, nil, false},
					{"retry", 0, 1, Presentation{From: here.From}, ErrRefreshReuse, false},
				}},
				{"fail/a retry without a known origin is reuse", []use{
					{"first", 0, 1, Presentation{Grace: time.Second}, nil, false},
					{"retry", 0, 1, Presentation{Grace: time.Second}, ErrRefreshReuse, false},
				}},
			} {
				t.Run(tt.name, func(t *testing.T) {
					c := newClock()
					s := open(t, c)
					fam := Family{ID: "fam-grace", Issuer: iss, Subject: "carol", SessionID: "s-g", ExpiresAt: c.Now().Add(time.Hour)}
					for _, u := range tt.uses {
						c.Advance(u.advance)
						f, err := s.UseRefreshTokenFrom(ctx, fam, h(u.hash), u.p)
						if u.want == nil && err != nil || u.want != nil && !errors.Is(err, u.want) {
							t.Fatalf("%s: err = %v, want %v", u.name, err, u.want)
						}
						if u.want == nil && (f.Retried != u.retried || f.Current != h(u.hash) || f.Revoked()) {
							t.Fatalf("%s: %+v, want current %s, retried %v, not revoked", u.name, f, h(u.hash), u.retried)
						}
						if u.want != nil && !f.Revoked() {
							t.Fatalf("%s: reuse left the family %+v unrevoked", u.name, f)
						}
					}
				})
			}
		})
		t.Run("ok/concurrent retries within the grace: one retry, the rest reuse", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			p := Presentation{From: "client-b|net", Grace: 5 * time.Second}
			fam := Family{ID: "fam-cg", Issuer: iss, Subject: "dave", ExpiresAt: c.Now().Add(time.Hour)}
			if _, err := s.UseRefreshTokenFrom(ctx, fam, "cg-hash", p); err != nil {
				t.Fatal(err)
			}
			var retried, reused atomic.Int64
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					f, err := s.UseRefreshTokenFrom(ctx, fam, "cg-hash", p)
					switch {
					case err == nil && f.Retried:
						retried.Add(1)
					case errors.Is(err, ErrRefreshReuse):
						reused.Add(1)
					default:
						t.Error(f, err)
					}
				})
			}
			wg.Wait()
			if retried.Load() != 1 || reused.Load() != 7 {
				t.Errorf("retried=%d reused=%d, want 1 and 7", retried.Load(), reused.Load())
			}
		})
		t.Run("ok/concurrent presentations of one token: one use, the rest reuse", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			fam := Family{ID: "fam-c", Issuer: iss, Subject: "bob", ExpiresAt: c.Now().Add(time.Hour)}
			var fresh, reused atomic.Int64
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					_, err := s.UseRefreshToken(ctx, fam, "same-hash")
					switch {
					case err == nil:
						fresh.Add(1)
					case errors.Is(err, ErrRefreshReuse):
						reused.Add(1)
					default:
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if fresh.Load() != 1 || reused.Load() != 15 {
				t.Errorf("fresh=%d reused=%d", fresh.Load(), reused.Load())
			}
		})
	})

	t.Run("revocations", func(t *testing.T) {
		with := func(c *clock, id string, nb, exp time.Duration, reason string) Revocation {
			return Revocation{ID: id, Kind: KindSubject, Issuer: iss, Value: "alice", Reason: reason,
				NotBefore: c.Now().Add(nb), ExpiresAt: c.Now().Add(exp)}
		}
		put := func(t *testing.T, s Store, r Revocation) Revocation {
			t.Helper()
			got, err := s.PutRevocation(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			return got
		}
		t.Run("ok/a later cut-off replaces an earlier one, and the dropped id goes", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			put(t, s, with(c, "r1", -2*time.Hour, time.Hour, "first"))
			got := put(t, s, with(c, "r2", -time.Hour, time.Hour, "second"))
			if got.ID != "r2" || got.Reason != "second" {
				t.Fatalf("kept %+v", got)
			}
			if _, err := s.GetRevocation(ctx, "r1"); !errors.Is(err, ErrNotFound) {
				t.Errorf("replaced id: err = %v", err)
			}
			if _, ok, _ := s.CheckRevocation(ctx, TokenRef{Issuer: iss, Subject: "alice", IssuedAt: c.Now().Add(-90 * time.Minute)}); !ok {
				t.Error("token issued between the cut-offs passes")
			}
			if _, ok, _ := s.CheckRevocation(ctx, TokenRef{Issuer: iss, Subject: "alice", IssuedAt: c.Now()}); ok {
				t.Error("token issued after the cut-off is revoked")
			}
		})
		t.Run("ok/an earlier cut-off arriving late keeps the stored one, with the later expiry", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			put(t, s, with(c, "r2", -time.Hour, time.Hour, "newer"))
			got := put(t, s, with(c, "r1", -2*time.Hour, 2*time.Hour, "older"))
			if got.ID != "r2" || !got.NotBefore.Equal(c.Now().Add(-time.Hour)) || !got.ExpiresAt.Equal(c.Now().Add(2*time.Hour)) {
				t.Fatalf("kept %+v", got)
			}
			if stored, err := s.GetRevocation(ctx, "r2"); err != nil || stored != got {
				t.Errorf("GetRevocation(r2) = %+v, %v; want %+v", stored, err, got)
			}
		})
		t.Run("ok/an expired revocation is replaced whatever its cut-off", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			put(t, s, with(c, "r2", -time.Hour, time.Minute, ""))
			c.Advance(2 * time.Minute)
			got := put(t, s, with(c, "r1", -3*time.Hour, time.Hour, ""))
			if got.ID != "r1" {
				t.Fatalf("kept %+v", got)
			}
		})
		t.Run("fail/an id that names another live revocation", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			put(t, s, with(c, "r1", 0, time.Hour, ""))
			other := with(c, "r1", 0, time.Hour, "")
			other.Value = "bob"
			if _, err := s.PutRevocation(ctx, other); !errors.Is(err, ErrExists) {
				t.Fatalf("err = %v, want ErrExists", err)
			}
			first := with(c, "x1", 0, time.Hour, "")
			first.Value = "carol"
			if _, err := s.PutRevocations(ctx, []Revocation{first, other}); !errors.Is(err, ErrExists) {
				t.Fatalf("import: err = %v, want ErrExists", err)
			}
			if _, err := s.GetRevocation(ctx, "x1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("a failed import stored some of its revocations: %v", err)
			}
		})
		t.Run("ok/get, list, delete", func(t *testing.T) {
			c := newClock()
			s := open(t, c)
			rs, err := s.PutRevocations(ctx, []Revocation{
				{ID: "j1", Kind: KindJTI, Issuer: iss, Value: "jti-1", ExpiresAt: c.Now().Add(time.Hour)},
				{ID: "c1", Kind: KindClient, Issuer: iss, Value: "app", ExpiresAt: c.Now().Add(time.Hour)},
			})
			if err != nil || len(rs) != 2 {
				t.Fatalf("import = %+v, %v", rs, err)
			}
			list, err := s.ListRevocations(ctx, RevocationFilter{})
			if err != nil || len(list) != 2 || list[0].ID != "j1" || list[1].ID != "c1" {
				t.Fatalf("list = %+v, %v", list, err)
			}
			if r, ok, _ := s.CheckRevocation(ctx, TokenRef{Issuer: iss, JTI: "jti-1"}); !ok || r.ID != "j1" {
				t.Fatalf("jti not revoked: %+v", r)
			}
			if err := s.DeleteRevocation(ctx, "j1"); err != nil {
				t.Fatal(err)
			}
			if err := s.DeleteRevocation(ctx, "j1"); !errors.Is(err, ErrNotFound) {
				t.Fatalf("second delete: %v", err)
			}
			if _, ok, _ := s.CheckRevocation(ctx, TokenRef{Issuer: iss, JTI: "jti-1"}); ok {
				t.Fatal("deleted revocation still applies")
			}
		})
	})
}
