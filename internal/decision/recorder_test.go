package decision

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
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

// stuckState is a store whose fingerprint writes wait until released, and
// then fail.
type stuckState struct {
	State
	release chan struct{}
}

func (s stuckState) RecordFingerprint(ctx context.Context, _ string, _ store.Sighting) error {
	select {
	case <-s.release:
	case <-ctx.Done():
	}
	return errors.New("disk refused the write")
}

// syncBuffer is a log sink safe for the writers' goroutines.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

func (l *logLines) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, substr) {
			n++
		}
	}
	return n
}

// Sightings dropped because the queue is full, and sightings whose write
// failed, are counted and warned of, at most once a minute each.
func TestRecorderCountsAndWarnsOfDroppedSightings(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &logLines{}
	st := stuckState{release: make(chan struct{})}
	e := NewEngine(ctx, fakeTokens{}, nil, Options{State: st, FingerprintQueue: 2, FingerprintWriters: 1,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	r := e.recorder
	var clock atomic.Int64
	clock.Store(time.Now().UnixNano())
	r.now = func() time.Time { return time.Unix(0, clock.Load()) }
	s := store.Sighting{IP: netip.MustParseAddr("203.0.113.7"), ExpiresAt: time.Now().Add(time.Hour)}

	// One writer stuck in a write, two sightings queued: the rest drop.
	r.record("t-0", s)
	for len(r.ch) != 0 {
		time.Sleep(time.Millisecond)
	}
	for i := range 12 {
		r.record(fmt.Sprintf("t-%d", i+1), s)
	}
	if got := e.SightingStats(); got.Dropped != 10 || got.Queued != 2 {
		t.Errorf("stats = %+v, want 10 dropped, 2 queued", got)
	}
	if n := logs.count("fingerprint sightings dropped"); n != 1 {
		t.Errorf("%d warnings of drops within a minute, want 1", n)
	}
	clock.Add(int64(time.Minute))
	r.record("t-late", s)
	if n := logs.count("fingerprint sightings dropped"); n != 2 || logs.count("dropped_since_last_warning=10") != 1 {
		t.Errorf("%d warnings of drops a minute later, want 2, the second counting the 10 since the first: %q", n, logs.lines)
	}

	// The stuck writes fail: counted, and warned of once within a minute.
	close(st.release)
	for e.SightingStats().Failed != 3 {
		time.Sleep(time.Millisecond)
	}
	if n := logs.count("fingerprint sightings failed to be written"); n != 1 {
		t.Errorf("%d warnings of failed writes, want 1", n)
	}
}
