package decision

import (
	"crypto/sha256"
	"fmt"
	"net/netip"
	"net/url"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/dpop"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/token"
)

func TestReuseKey(t *testing.T) {
	base := func() (*Request, proofResult) {
		u, _ := url.Parse("https://api.example.com/v1/accounts/1?x=1")
		return &Request{
			Method: "GET", URL: u, RemoteIP: netip.MustParseAddr("203.0.113.7"),
			Headers: map[string][]string{"user-agent": {"app/1"}, "x-request-id": {"a"}, "authorization": {"Bearer t1"}},
		}, proofResult{}
	}
	tok := &token.Token{Hash: "h1"}
	named := policy.Reuse{Version: 1, Allowed: true, Headers: []string{"user-agent"}}
	all := policy.Reuse{Version: 1, Allowed: true, AllHeaders: true}
	tests := []struct {
		name   string
		reuse  policy.Reuse
		change func(*Request, *proofResult)
		same   bool
	}{
		{"ok/the same request", named, func(*Request, *proofResult) {}, true},
		{"ok/a header the policy does not read", named, func(r *Request, _ *proofResult) { r.Headers["x-request-id"] = []string{"b"} }, true},
		{"ok/a credential header never counts", all, func(r *Request, _ *proofResult) { r.Headers["authorization"] = []string{"Bearer t2"} }, true},
		{"fail/a header the policy reads", named, func(r *Request, _ *proofResult) { r.Headers["user-agent"] = []string{"app/2"} }, false},
		{"fail/a read header absent or without values", named, func(r *Request, _ *proofResult) { r.Headers["user-agent"] = nil }, false},
		{"fail/any header when the policy may read any", all, func(r *Request, _ *proofResult) { r.Headers["x-request-id"] = []string{"b"} }, false},
		{"fail/another header when the policy may read any", all, func(r *Request, _ *proofResult) { r.Headers["x-other"] = []string{""} }, false},
		{"fail/method", named, func(r *Request, _ *proofResult) { r.Method = "POST" }, false},
		{"fail/path", named, func(r *Request, _ *proofResult) { r.URL.Path = "/v1/accounts/2" }, false},
		{"fail/query", named, func(r *Request, _ *proofResult) { r.URL.RawQuery = "x=2" }, false},
		{"fail/host", named, func(r *Request, _ *proofResult) { r.URL.Host = "api.example.org" }, false},
		{"fail/client address", named, func(r *Request, _ *proofResult) { r.RemoteIP = netip.MustParseAddr("203.0.113.8") }, false},
		{"fail/no client address", named, func(r *Request, _ *proofResult) { r.RemoteIP = netip.Addr{} }, false},
		{"fail/client certificate", named, func(r *Request, _ *proofResult) { r.ClientCertSHA256 = "x5t" }, false},
		{"fail/a DPoP proof of another key", named, func(_ *Request, p *proofResult) { *p = proofResult{present: true, valid: true, jkt: "k2"} }, false},
		{"fail/a DPoP proof that failed", named, func(_ *Request, p *proofResult) {
			*p = proofResult{present: true, err: &dpop.Error{Code: "dpop_replayed", Message: "replayed"}}
		}, false},
		{"fail/another policy activation", policy.Reuse{Version: 2, Allowed: true, Headers: []string{"user-agent"}}, func(*Request, *proofResult) {}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r1, p1 := base()
			r2, p2 := base()
			tt.change(r2, &p2)
			cred := credential{scheme: "bearer"}
			k1 := keyOf(r1, cred, tok, p1, named)
			k2 := keyOf(r2, cred, tok, p2, tt.reuse)
			if tt.reuse.AllHeaders {
				k1 = keyOf(r1, cred, tok, p1, tt.reuse)
			}
			if (k1 == k2) != tt.same {
				t.Errorf("same key = %v, want %v", k1 == k2, tt.same)
			}
		})
	}
}

func TestReuseCacheBoundedInBytes(t *testing.T) {
	entry := func(i int) *reuseEntry {
		return &reuseEntry{version: 1, verification: uint64(i + 1), answer: keptAnswer{allow: true, status: 200,
			upstream: map[string]string{"x-tokenguard-subject": fmt.Sprintf("user-%d", i), "x-tokenguard-client": "web-app"}}}
	}
	key := func(i int) reuseKey { return reuseKey(sha256.Sum256(fmt.Appendf(nil, "k%d", i))) }
	t.Run("ok/the estimated bytes stay within the bound", func(t *testing.T) {
		const maxBytes = reuseShards * 16 << 10 // 16 KiB a shard: about 24 entries each
		c := newReuseCache(1_000_000, maxBytes, time.Minute)
		for i := range 2000 {
			c.put(key(i), entry(i))
			if st := c.stats(); st.Bytes > maxBytes {
				t.Fatalf("after %d entries: %d bytes, bound %d", i+1, st.Bytes, maxBytes)
			}
		}
		st := c.stats()
		if st.Entries >= 2000 || st.Entries < 100 || st.MaxBytes != maxBytes {
			t.Fatalf("stats %+v: want some, not all, entries kept", st)
		}
	})
	t.Run("ok/replacing an entry counts it once", func(t *testing.T) {
		c := newReuseCache(1000, 1<<20, time.Minute)
		c.put(key(1), entry(1))
		one := c.stats().Bytes
		c.put(key(1), entry(1))
		if st := c.stats(); st.Entries != 1 || st.Bytes != one {
			t.Fatalf("after replacing: %+v, want 1 entry of %d bytes", st, one)
		}
	})
	t.Run("ok/the entry bound still holds", func(t *testing.T) {
		c := newReuseCache(reuseShards, 1<<30, time.Minute)
		for i := range 500 {
			c.put(key(i), entry(i))
		}
		if st := c.stats(); st.Entries > reuseShards {
			t.Fatalf("%d entries kept, bound %d", st.Entries, reuseShards)
		}
	})
}

// TestSweepRemovesKeptDecisionsThatCanNoLongerBeReused: a sweep removes the
// decisions past their until and those of another policy version, keeps
// the rest, and gives their bytes back.
func TestSweepRemovesKeptDecisionsThatCanNoLongerBeReused(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	key := func(i int) reuseKey { return reuseKey(sha256.Sum256(fmt.Appendf(nil, "k%d", i))) }
	entry := func(version uint64, until time.Time) *reuseEntry {
		return &reuseEntry{version: version, until: until, answer: keptAnswer{allow: true, status: 200}}
	}
	c := newReuseCache(10_000, 1<<30, time.Minute)
	var live []reuseKey
	for i := range 300 {
		switch i % 3 {
		case 0: // live: this version, until ahead
			c.put(key(i), entry(7, now.Add(time.Minute)))
			live = append(live, key(i))
		case 1: // expired: until now or before
			c.put(key(i), entry(7, now))
		case 2: // made by the previous policy version
			c.put(key(i), entry(6, now.Add(time.Minute)))
		}
	}
	var liveBytes int64
	for _, k := range live {
		liveBytes += c.get(k).size
	}
	r := policy.Reuse{Version: 7, Previous: 6, Activated: now.Add(-time.Hour)}
	if removed := c.sweep(now, r); removed != 200 {
		t.Errorf("sweep removed %d, want the 200 dead ones", removed)
	}
	st := c.stats()
	if st.Entries != len(live) || st.Bytes != liveBytes {
		t.Errorf("after the sweep: %+v, want %d entries of %d bytes", st, len(live), liveBytes)
	}
	for _, k := range live {
		if c.get(k) == nil {
			t.Fatal("a live decision was swept")
		}
	}
	if removed := c.sweep(now, r); removed != 0 {
		t.Errorf("a second sweep removed %d", removed)
	}
}
