package decision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/store"
)

// batchCounter is a real bbolt store that counts batch writes and can be
// told to fail them.
type batchCounter struct {
	*store.Bolt
	batches, sightings atomic.Int64
	failBatches        bool
}

func (b *batchCounter) RecordFingerprints(ctx context.Context, ss []store.TokenSighting) error {
	b.batches.Add(1)
	b.sightings.Add(int64(len(ss)))
	if b.failBatches {
		return errors.New("batch refused")
	}
	return b.Bolt.RecordFingerprints(ctx, ss)
}

func TestRecorderWritesSightingsInBatches(t *testing.T) {
	for _, tt := range []struct {
		name        string
		failBatches bool
	}{
		{"ok/one transaction for a burst of sightings", false},
		{"ok/a failed batch is written one sighting at a time", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			bolt, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer bolt.Close()
			st := &batchCounter{Bolt: bolt, failBatches: tt.failBatches}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := newRecorder(ctx, st, 4096, 4, slog.New(slog.DiscardHandler))
			const n = 500
			exp := time.Now().Add(time.Hour)
			for i := range n {
				r.record(fmt.Sprintf("token-%d", i), store.Sighting{IP: netip.MustParseAddr("203.0.113.7"), UserAgent: "ua", ExpiresAt: exp})
			}
			// An expired token's sighting is left out, not a reason to fail.
			r.record("expired", store.Sighting{ExpiresAt: time.Now().Add(-time.Second)})
			// Every sighting is seen at once, before it is written.
			for i := range n {
				if _, found, err := bolt.LastSeen(ctx, fmt.Sprintf("token-%d", i)); err != nil || !found {
					t.Fatalf("token-%d before its write: found %v, %v", i, found, err)
				}
			}
			// Then written, and let go of.
			deadline := time.Now().Add(10 * time.Second)
			for {
				stats, err := bolt.Stats(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if stats.Fingerprints == n && stats.PendingSightings == 0 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("%d fingerprints written, %d pending; want %d, 0", stats.Fingerprints, stats.PendingSightings, n)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if b := st.batches.Load(); b == 0 || b > n/10 {
				t.Errorf("%d batches for %d sightings", b, n)
			}
			if r.dropped.Load() != 0 {
				t.Errorf("dropped %d", r.dropped.Load())
			}
		})
	}
}
