package token

import (
	"context"
	"fmt"
	"runtime"
	"testing"
)

// TestCacheBytesEstimate compares the cache's estimate of its entries with
// the heap they really take: it must be honest within a factor that keeps
// tokens.cache_bytes meaningful.
func TestCacheBytesEstimate(t *testing.T) {
	if testing.Short() {
		t.Skip("mints and verifies 2000 tokens")
	}
	f := newFixture(t, func(o *Options) { o.CacheBytes = 1 << 30 })
	const n = 2000
	raws := make([]string, n)
	for i := range raws {
		raws[i] = mint(t, f.ed, map[string]any{
			"jti": fmt.Sprintf("jti-%d", i), "sub": fmt.Sprintf("user-%d", i),
			"scope": "accounts:read accounts:write payments:read", "roles": []string{"reader", "writer"},
			"cnf": map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},
		})
	}
	before := heapInUse()
	for _, raw := range raws {
		if _, err := f.v.Verify(context.Background(), raw); err != nil {
			t.Fatal(err)
		}
	}
	after := heapInUse()
	runtime.KeepAlive(raws)
	st := f.v.CacheStats()
	if st.Entries != n {
		t.Fatalf("cache holds %d entries, want %d", st.Entries, n)
	}
	real := float64(after - before)
	ratio := float64(st.Bytes) / real
	t.Logf("estimate %d B/entry, heap %0.f B/entry, ratio %.2f", st.Bytes/n, real/n, ratio)
	if ratio < 0.75 || ratio > 1.5 {
		t.Errorf("estimate %d B is %.2f× the heap the entries take (%.0f B)", st.Bytes, ratio, real)
	}
}

func TestCacheBoundedInBytes(t *testing.T) {
	ctx := context.Background()
	t.Run("ok/the estimated bytes stay within the bound", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.CacheBytes = 64 << 10 })
		for i := range 60 {
			raw := mint(t, f.ed, map[string]any{"jti": fmt.Sprintf("jti-%d", i)})
			if _, err := f.v.Verify(ctx, raw); err != nil {
				t.Fatal(err)
			}
			if st := f.v.CacheStats(); st.Bytes > 64<<10 || st.Entries == 0 {
				t.Fatalf("after %d tokens: %+v", i+1, st)
			}
		}
		if st := f.v.CacheStats(); st.Entries >= 60 {
			t.Fatalf("nothing was evicted: %+v", st)
		}
	})
	t.Run("ok/removing entries gives their bytes back", func(t *testing.T) {
		f := newFixture(t)
		raw := mint(t, f.ed, nil)
		tok, err := f.v.Verify(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		if st := f.v.CacheStats(); st.Entries != 1 || st.Bytes <= 0 {
			t.Fatalf("after one token: %+v", st)
		}
		f.v.Forget(tok.Hash)
		if st := f.v.CacheStats(); st.Entries != 0 || st.Bytes != 0 {
			t.Fatalf("after Forget: %+v", st)
		}
	})
	t.Run("ok/an entry too large for the bound is not kept", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.CacheBytes = 16 << 10 })
		big := make([]string, 200)
		for i := range big {
			big[i] = fmt.Sprintf("role-%d", i)
		}
		raw := mint(t, f.ed, map[string]any{"roles": big})
		if _, err := f.v.Verify(ctx, raw); err != nil {
			t.Fatal(err)
		}
		if st := f.v.CacheStats(); st.Entries != 0 {
			t.Fatalf("a token of %d roles was kept in a 16 KiB cache: %+v", len(big), st)
		}
	})
}

func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}
