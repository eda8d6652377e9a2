//go:build integration

package store

import (
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/redistest"
)

// TestSharedFollowerStaysConnectedWithAShortTimeout: the blocking read of
// the stream outlasts the per-call timeout without counting as a failure.
func TestSharedFollowerStaysConnectedWithAShortTimeout(t *testing.T) {
	srv := redistest.Start(t)
	c := newClock()
	s := openShared(t, srv, "blk:", c, SharedOptions{Timeout: 50 * time.Millisecond, BlockFor: 300 * time.Millisecond})
	time.Sleep(2 * time.Second)
	if st := s.Status(); !st.Connected || !st.Ready || st.LastError != "" || st.Resyncs != 1 {
		t.Fatalf("status = %+v, want connected without errors and one initial resync", st)
	}
}
