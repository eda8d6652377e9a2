package store

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// benchRevocations is the size of the revocation table CheckRevocation is
// measured against.
const benchRevocations = 1_000_000

// randomHex returns n random bytes from r, hex-encoded.
func randomHex(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return hex.EncodeToString(b)
}

// fillRevocations stores n revocations (70% jti, 10% each of session,
// subject and client, random values) in transactions of 100,000, and returns
// a sample of the stored ones.
func fillRevocations(b *testing.B, s *Bolt, n int) []Revocation {
	b.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	cut := t0.Add(-time.Hour)
	exp := t0.Add(24 * time.Hour)
	var sample []Revocation
	const perTx = 100_000
	for done := 0; done < n; done += perTx {
		err := s.db.Update(func(tx *bolt.Tx) error {
			for i := done; i < min(done+perTx, n); i++ {
				kind := KindJTI
				switch i % 10 {
				case 7:
					kind = KindSession
				case 8:
					kind = KindSubject
				case 9:
					kind = KindClient
				}
				rev := Revocation{
					ID: randomHex(r, 16), Kind: kind, Issuer: iss, Value: randomHex(r, 16),
					Reason: "benchmark", CreatedAt: cut, NotBefore: cut, ExpiresAt: exp,
				}
				if _, err := putRevocation(tx, rev, t0.UnixNano()); err != nil {
					return err
				}
				if i%997 == 0 {
					sample = append(sample, rev)
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	return sample
}

func BenchmarkCheckRevocation(b *testing.B) {
	ctx := context.Background()
	c := newClock()
	dir := b.TempDir()
	s := openTestIn(b, dir, c)
	start := time.Now()
	sample := fillRevocations(b, s, benchRevocations)
	fi, _ := os.Stat(filepath.Join(dir, FileName))
	b.Logf("stored %d revocations in %s, file %d MiB", benchRevocations, time.Since(start).Round(time.Millisecond), fi.Size()>>20)

	r := rand.New(rand.NewPCG(3, 4))
	const refs = 4096
	// misses: a token with all four fields, none revoked.
	miss := make([]TokenRef, refs)
	for i := range miss {
		miss[i] = TokenRef{Issuer: iss, JTI: randomHex(r, 16), SessionID: randomHex(r, 16), Subject: randomHex(r, 16), ClientID: randomHex(r, 16), IssuedAt: t0}
	}
	// hits on the jti, the first lookup; client hits come last.
	var jtiHits, clientHits, subjectAfter []TokenRef
	for _, rev := range sample {
		switch rev.Kind {
		case KindJTI:
			jtiHits = append(jtiHits, TokenRef{Issuer: iss, JTI: rev.Value, Subject: "s", ClientID: "c", IssuedAt: t0})
		case KindClient:
			clientHits = append(clientHits, TokenRef{Issuer: iss, JTI: randomHex(r, 16), SessionID: randomHex(r, 16), Subject: randomHex(r, 16), ClientID: rev.Value, IssuedAt: t0.Add(-2 * time.Hour)})
		case KindSubject:
			// The subject is revoked, but the token was issued after the
			// cut-off: the common case after a logout.
			subjectAfter = append(subjectAfter, TokenRef{Issuer: iss, JTI: randomHex(r, 16), SessionID: randomHex(r, 16), Subject: rev.Value, ClientID: randomHex(r, 16), IssuedAt: t0})
		}
	}
	b.Logf("sample: %d jti, %d client, %d subject", len(jtiHits), len(clientHits), len(subjectAfter))

	run := func(name string, in []TokenRef, want bool) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				_, ok, err := s.CheckRevocation(ctx, in[i%len(in)])
				if err != nil || ok != want {
					b.Fatalf("CheckRevocation = %v, %v; want %v", ok, err, want)
				}
				i++
			}
		})
	}
	run("miss-4-lookups", miss, false)
	run("hit-jti", jtiHits, true)
	run("hit-client-4th-lookup", clientHits, true)
	run("subject-issued-after-cutoff", subjectAfter, false)
	b.Cleanup(func() {
		start := time.Now()
		st, err := s.Stats(ctx)
		b.Logf("Stats at 1M: %v in %s (%v)", st.Revocations, time.Since(start).Round(time.Microsecond), err)
		c.Advance(48 * time.Hour)
		start = time.Now()
		n, err := s.Sweep(ctx, c.Now())
		b.Logf("Sweep of %d expired revocations: %s (%v)", n, time.Since(start).Round(time.Millisecond), err)
	})
	b.Run("miss-4-lookups-parallel", func(b *testing.B) {
		b.ReportAllocs()
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, ok, err := s.CheckRevocation(ctx, miss[next.Add(1)%refs]); err != nil || ok {
					b.Fatalf("CheckRevocation = %v, %v", ok, err)
				}
			}
		})
	})
}

func BenchmarkRecordFingerprint(b *testing.B) {
	ctx := context.Background()
	s := openTest(b, newClock())
	exp := t0.Add(time.Hour)
	hashes := make([]string, 1000)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range hashes {
		hashes[i] = randomHex(r, 32)
	}
	sight := Sighting{IP: netip.MustParseAddr("192.0.2.1"), UserAgent: "Mozilla/5.0 (X11; Linux x86_64)", ExpiresAt: exp}
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if err := s.RecordFingerprint(ctx, hashes[i%len(hashes)], sight); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("parallel-64", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32) // 32 × GOMAXPROCS goroutines: concurrent decisions
		var next atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := s.RecordFingerprint(ctx, hashes[next.Add(1)%int64(len(hashes))], sight); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}

func BenchmarkSpendDPoPJTI(b *testing.B) {
	ctx := context.Background()
	s := openTest(b, newClock())
	exp := t0.Add(time.Minute)
	var next atomic.Int64
	key := func() string { return fmt.Sprintf("%064x", next.Add(1)) }
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if fresh, err := s.SpendDPoPJTI(ctx, key(), exp); err != nil || !fresh {
				b.Fatal(fresh, err)
			}
		}
	})
	b.Run("parallel-64", func(b *testing.B) {
		b.ReportAllocs()
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if fresh, err := s.SpendDPoPJTI(ctx, key(), exp); err != nil || !fresh {
					b.Fatal(fresh, err)
				}
			}
		})
	})
}
