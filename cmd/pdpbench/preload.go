package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// preload fills the state file in dataDir with revocations (70% jti, 10%
// each of session, subject and client cut-offs) and fingerprints of
// tokens the benchmark never presents, in bulk transactions, before the
// server opens it.
func preload(ctx context.Context, dataDir string, revocations, fingerprints int, log *slog.Logger) error {
	start := time.Now()
	s, err := store.OpenBolt(dataDir, store.BoltOptions{Logger: log})
	if err != nil {
		return err
	}
	defer s.Close()
	now := time.Now()
	exp := now.Add(24 * time.Hour)
	cut := now.Add(-time.Hour)
	kinds := [10]store.Kind{store.KindJTI, store.KindJTI, store.KindJTI, store.KindJTI, store.KindJTI, store.KindJTI, store.KindJTI,
		store.KindSession, store.KindSubject, store.KindClient}
	for done := 0; done < revocations; done += store.MaxImport {
		batch := make([]store.Revocation, min(store.MaxImport, revocations-done))
		for i := range batch {
			n := done + i
			batch[i] = store.Revocation{
				ID: "bench-" + strconv.Itoa(n), Kind: kinds[n%10], Issuer: issuerURL, Value: "revoked-" + strconv.Itoa(n),
				Reason: "load benchmark", CreatedAt: cut, NotBefore: cut, ExpiresAt: exp,
			}
		}
		if _, err := s.PutRevocations(ctx, batch); err != nil {
			return fmt.Errorf("preloading revocations: %w", err)
		}
	}
	ip := netip.MustParseAddr("198.51.100.1")
	for done := 0; done < fingerprints; done += store.MaxImport {
		batch := make([]store.TokenSighting, min(store.MaxImport, fingerprints-done))
		for i := range batch {
			batch[i] = store.TokenSighting{TokenHash: token.HashToken("fingerprint-" + strconv.Itoa(done+i)),
				Sighting: store.Sighting{At: now, IP: ip, UserAgent: "preloaded/1", ExpiresAt: now.Add(2 * time.Hour)}}
		}
		if err := s.RecordFingerprints(ctx, batch); err != nil {
			return fmt.Errorf("preloading fingerprints: %w", err)
		}
	}
	st, err := s.Stats(ctx)
	if err != nil {
		return err
	}
	log.Info("state file preloaded", "revocations", st.Revocations, "fingerprints", st.Fingerprints,
		"size_mib", st.SizeBytes>>20, "took", time.Since(start).Round(time.Millisecond))
	return nil
}
