package token

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/devissuer"
)

func TestJWTCache(t *testing.T) {
	ctx := context.Background()
	t.Run("hit needs no keys", func(t *testing.T) {
		f := newFixture(t)
		raw := mint(t, f.a, nil)
		first, err := f.v.Verify(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		f.jwksA.Close() // the JWKS endpoint disappears; the cached result stays
		second, err := f.v.Verify(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		if first == second || first.Claims != second.Claims || second.Hash != HashToken(raw) {
			t.Fatal("cache hit should return a fresh struct sharing the cached claims")
		}
	})
	t.Run("callers cannot corrupt the cached struct", func(t *testing.T) {
		f := newFixture(t)
		raw := mint(t, f.a, nil)
		first, _ := f.v.Verify(ctx, raw)
		first.Subject = "admin"
		second, _ := f.v.Verify(ctx, raw)
		if second.Subject != "user-1" {
			t.Fatalf("subject = %q", second.Subject)
		}
	})
	t.Run("hit re-checks exp", func(t *testing.T) {
		f := newFixture(t)
		raw := mint(t, f.a, map[string]any{"exp": testNow.Add(time.Minute).Unix()})
		if _, err := f.v.Verify(ctx, raw); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(time.Minute + 31*time.Second)
		_, err := f.v.Verify(ctx, raw)
		wantCode(t, raw, nil, err, CodeExpired)
	})
	t.Run("hit re-checks nbf when the clock goes back", func(t *testing.T) {
		f := newFixture(t)
		raw := mint(t, f.a, map[string]any{"nbf": testNow.Unix()})
		if _, err := f.v.Verify(ctx, raw); err != nil {
			t.Fatal(err)
		}
		f.clock.Advance(-time.Hour)
		_, err := f.v.Verify(ctx, raw)
		wantCode(t, raw, nil, err, CodeNotYetValid)
	})
	t.Run("failures are not cached", func(t *testing.T) {
		f := newFixture(t)
		// A token naming a key the issuer has not published yet.
		next := newIssuer(t, issA, "ES256")
		raw := mint(t, next, nil)
		_, err := f.v.Verify(ctx, raw)
		wantCode(t, raw, nil, err, CodeSignatureInvalid)
		if n := f.v.cache.len(); n != 0 {
			t.Fatalf("cache holds %d entries after a failure", n)
		}
		f.jwksA.set(mergeJWKS(t, f.a.JWKS(), next.JWKS()), 0, "")
		f.clock.Advance(31 * time.Second)
		if _, err := f.v.Verify(ctx, raw); err != nil {
			t.Fatalf("after the key is published: %v", err)
		}
	})
	t.Run("bounded", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.CacheSize = 3 })
		for i := range 10 {
			raw := mint(t, f.ed, map[string]any{"jti": string(rune('a' + i))})
			if _, err := f.v.Verify(ctx, raw); err != nil {
				t.Fatal(err)
			}
			if n := f.v.cache.len(); n > 3 {
				t.Fatalf("cache holds %d entries, bound is 3", n)
			}
		}
	})
	t.Run("evicts expired entries first", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.CacheSize = 2 })
		short := mint(t, f.ed, map[string]any{"exp": testNow.Add(time.Second).Unix()})
		long := mint(t, f.ed, map[string]any{"exp": testNow.Add(time.Hour).Unix()})
		for _, raw := range []string{short, long} {
			if _, err := f.v.Verify(ctx, raw); err != nil {
				t.Fatal(err)
			}
		}
		f.clock.Advance(time.Minute)
		third := mint(t, f.ed, map[string]any{"exp": testNow.Add(time.Hour).Unix()})
		if _, err := f.v.Verify(ctx, third); err != nil {
			t.Fatal(err)
		}
		if _, ok := f.v.cache.get(sumOf(long)); !ok {
			t.Fatal("the live entry was evicted instead of the expired one")
		}
	})
	t.Run("a sweep removes the expired entries only, before the cache fills", func(t *testing.T) {
		f := newFixture(t)
		var short, long []string
		for i := range 20 {
			short = append(short, mint(t, f.ed, map[string]any{"jti": fmt.Sprint("s", i), "exp": testNow.Add(time.Second).Unix()}))
			long = append(long, mint(t, f.ed, map[string]any{"jti": fmt.Sprint("l", i), "exp": testNow.Add(time.Hour).Unix()}))
		}
		for _, raw := range append(slices.Clone(short), long...) {
			if _, err := f.v.Verify(ctx, raw); err != nil {
				t.Fatal(err)
			}
		}
		before := f.v.CacheStats()
		if removed := f.v.cache.sweep(f.clock.Now()); removed != 0 {
			t.Fatalf("a sweep before anything expired removed %d", removed)
		}
		f.clock.Advance(time.Minute)
		if removed := f.v.cache.sweep(f.clock.Now()); removed != len(short) {
			t.Fatalf("sweep removed %d, want the %d expired", removed, len(short))
		}
		after := f.v.CacheStats()
		if after.Entries != len(long) || after.Bytes <= 0 || after.Bytes >= before.Bytes {
			t.Fatalf("before %+v, after %+v: want the %d live entries and fewer bytes", before, after, len(long))
		}
		for _, raw := range long {
			if _, ok := f.v.cache.get(sumOf(raw)); !ok {
				t.Fatal("a live entry was swept")
			}
		}
	})
	t.Run("Forget purges a JWT", func(t *testing.T) {
		f := newFixture(t)
		raw := mint(t, f.ed, nil)
		tok, err := f.v.Verify(ctx, raw)
		if err != nil {
			t.Fatal(err)
		}
		f.v.Forget(tok.Hash)
		if _, ok := f.v.cache.get(sumOf(raw)); ok {
			t.Fatal("entry still cached")
		}
	})
	t.Run("a different spelling of the same token is not a hit", func(t *testing.T) {
		f := newFixture(t)
		raw := mint(t, f.a, nil, devissuer.WithHeader("typ", "at+jwt"))
		if _, err := f.v.Verify(ctx, raw); err != nil {
			t.Fatal(err)
		}
		_, err := f.v.Verify(ctx, raw+"=")
		wantCode(t, raw, nil, err, CodeTokenMalformed)
	})
}

func sumOf(raw string) [32]byte {
	var s [32]byte
	copy(s[:], mustDecode(HashToken(raw)))
	return s
}
