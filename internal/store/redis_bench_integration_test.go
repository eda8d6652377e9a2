//go:build integration

package store

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/redistest"
)

// BenchmarkStoreBackends measures the store calls on the decision path with
// each backend: the fingerprint read of a warm bearer token (pdp.last_seen),
// the revocation check (local in both), and the DPoP replay spend.
//
//	go test -tags integration -run '^$' -bench StoreBackends ./internal/store
func BenchmarkStoreBackends(b *testing.B) {
	srv := redistest.Start(b)
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	for _, backend := range []string{"bbolt", "redis"} {
		local, err := OpenBolt(b.TempDir(), BoltOptions{})
		if err != nil {
			b.Fatal(err)
		}
		var s Store = local
		if backend == "redis" {
			sh, err := OpenShared(local, SharedOptions{Addrs: []string{srv.Addr()}, KeyPrefix: "bench:", Timeout: time.Second})
			if err != nil {
				b.Fatal(err)
			}
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := sh.WaitReady(wctx); err != nil {
				b.Fatal(err)
			}
			cancel()
			s = sh
		}
		b.Cleanup(func() { _ = s.Close() })
		if err := s.RecordFingerprint(ctx, "warm", Sighting{IP: netip.MustParseAddr("203.0.113.7"), UserAgent: "bench/1", ExpiresAt: exp}); err != nil {
			b.Fatal(err)
		}
		if _, err := s.PutRevocation(ctx, Revocation{Kind: KindSubject, Issuer: iss, Value: "someone-else", ExpiresAt: exp}); err != nil {
			b.Fatal(err)
		}
		b.Run("backend="+backend+"/last_seen", func(b *testing.B) {
			for b.Loop() {
				if _, ok, err := s.LastSeen(ctx, "warm"); err != nil || !ok {
					b.Fatal(ok, err)
				}
			}
		})
		b.Run("backend="+backend+"/check_revocation", func(b *testing.B) {
			ref := TokenRef{Issuer: iss, Subject: "alice", JTI: "j", SessionID: "s", ClientID: "c", IssuedAt: time.Now()}
			for b.Loop() {
				if _, _, err := s.CheckRevocation(ctx, ref); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("backend="+backend+"/spend_dpop_jti", func(b *testing.B) {
			i := 0
			for b.Loop() {
				i++
				if fresh, err := s.SpendDPoPJTI(ctx, fmt.Sprint(backend, i), exp); err != nil || !fresh {
					b.Fatal(fresh, err)
				}
			}
		})
	}
}
