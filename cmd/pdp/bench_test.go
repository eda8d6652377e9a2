package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/store"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
	"github.com/tokenguard/pdp/internal/token"
)

// BenchmarkDecideInProcess measures one decision without HTTP: token
// verification (a cache hit after the first) plus policy evaluation.
//
// reuse=on is the warm path: the decision kept for the token is reused
// while the store's versions of its pdp.* answers stand. reuse=off evaluates
// the policy every time (what a token's first request costs, minus the
// signature check).
func BenchmarkDecideInProcess(b *testing.B) {
	b.Run("reuse=on", func(b *testing.B) { benchmarkDecideInProcess(b, nil) })
	b.Run("reuse=off", func(b *testing.B) {
		benchmarkDecideInProcess(b, func(c *config.Config) { c.DecisionCache.MaxEntries = 0 })
	})
}

func benchmarkDecideInProcess(b *testing.B, mutate func(*config.Config)) {
	tb := newTestbed(b, mutate)
	decideAllowed(b, tb, warmRequest(b, tb))
}

// warmRequest is an allowed request carrying a fresh ES256 bearer token of
// tb's issuer.
func warmRequest(b *testing.B, tb *testbed) *decision.Request {
	b.Helper()
	req, err := decision.NewRequest(decision.RawRequest{
		Method:   "GET",
		URL:      "https://api.example.com/v1/accounts/42",
		Headers:  map[string][]string{"authorization": {"Bearer " + tb.mint(b, "ES256", nil)}, "user-agent": {"bench/1"}},
		RemoteIP: "203.0.113.7",
	})
	if err != nil {
		b.Fatal(err)
	}
	return req
}

// decideAllowed decides req once per iteration of b; every decision must be
// an allow.
func decideAllowed(b *testing.B, tb *testbed, req *decision.Request) {
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		d, err := tb.app.decider.Decide(ctx, req)
		if err != nil || !d.Allow {
			b.Fatalf("decision: %v %+v", err, d)
		}
	}
}

// BenchmarkDecideColdToken measures a decision whose token is not in the
// verification cache: ES256 signature verification included (each token is
// forgotten after use, which costs a map delete).
func BenchmarkDecideColdToken(b *testing.B) {
	tb := newTestbed(b, nil)
	const n = 256
	reqs := make([]*decision.Request, n)
	hashes := make([]string, n)
	for i := range reqs {
		raw := tb.mint(b, "ES256", nil)
		r, err := decision.NewRequest(decision.RawRequest{
			Method:  "GET",
			URL:     "https://api.example.com/v1/accounts/42",
			Headers: map[string][]string{"authorization": {"Bearer " + raw}},
		})
		if err != nil {
			b.Fatal(err)
		}
		reqs[i], hashes[i] = r, token.HashToken(raw)
	}
	ctx := b.Context()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		d, err := tb.app.decider.Decide(ctx, reqs[i%n])
		if err != nil || !d.Allow {
			b.Fatalf("decision: %v %+v", err, d)
		}
		tb.app.verifier.Forget(hashes[i%n])
		i++
	}
}

// BenchmarkDecideHTTP measures POST /v1/decide over loopback with a
// keep-alive client: JSON in and out plus the in-process decision.
func BenchmarkDecideHTTP(b *testing.B) {
	b.Run("decision-logs=console", func(b *testing.B) { benchmarkDecideHTTP(b, nil) })
	b.Run("decision-logs=off", func(b *testing.B) {
		benchmarkDecideHTTP(b, func(c *config.Config) { c.DecisionLogs.Console = false })
	})
}

func benchmarkDecideHTTP(b *testing.B, mutate func(*config.Config)) {
	tb := newTestbed(b, mutate)
	body, _ := json.Marshal(map[string]any{"request": map[string]any{
		"method": "GET", "url": "https://api.example.com/v1/accounts/42",
		"headers": map[string]any{"authorization": "Bearer " + tb.mint(b, "ES256", nil), "user-agent": "bench/1"}, "remote_ip": "203.0.113.7",
	}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	url := tb.pdp.URL + "/v1/decide"
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
}

// BenchmarkAdminRevocations measures POST /v1/admin/revocations over
// loopback from concurrent clients: each answer is a 201 whose revocation
// is fsync'ed on disk.
func BenchmarkAdminRevocations(b *testing.B) {
	tb := newTestbed(b, func(c *config.Config) {
		cred := filepath.Join(b.TempDir(), "admin")
		if err := os.WriteFile(cred, []byte(adminCredential), 0o600); err != nil {
			b.Fatal(err)
		}
		c.Admin.TokenFile = cred
	})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	var n atomic.Int64
	b.SetParallelism(16)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := fmt.Sprintf(`{"kind":"jti","iss":"https://as.example.com","value":"bench-%d","reason":"benchmark"}`, n.Add(1))
			req, _ := http.NewRequest("POST", tb.pdp.URL+"/v1/admin/revocations", strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+adminCredential)
			resp, err := client.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated {
				b.Fatalf("status %d", resp.StatusCode)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "revocations/s")
}

// BenchmarkDecideWith1MRevocations is BenchmarkDecideInProcess with a
// million revocations (70% jti, 10% each of subject, session and client) in
// the bbolt file. Filling the file takes a while; it is not timed.
func BenchmarkDecideWith1MRevocations(b *testing.B) {
	tb := newTestbed(b, nil)
	const total, chunk = 1_000_000, store.MaxImport
	exp := time.Now().Add(24 * time.Hour)
	kinds := []store.Kind{store.KindJTI, store.KindJTI, store.KindJTI, store.KindJTI, store.KindJTI, store.KindJTI, store.KindJTI,
		store.KindSubject, store.KindSession, store.KindClient}
	iss := tb.issuers["ES256"].URL()
	for done := 0; done < total; done += chunk {
		batch := make([]store.Revocation, chunk)
		for i := range batch {
			batch[i] = store.Revocation{Kind: kinds[(done+i)%10], Issuer: iss, Value: fmt.Sprintf("v-%d", done+i), ExpiresAt: exp}
		}
		if _, err := tb.app.store.PutRevocations(b.Context(), batch); err != nil {
			b.Fatal(err)
		}
	}
	decideAllowed(b, tb, warmRequest(b, tb))
}

// BenchmarkDecideDPoP measures a decision for a DPoP-bound token with a
// fresh proof each time: proof signature, replay check in bbolt (group
// committed), binding and policy. Proofs are minted outside the timer.
func BenchmarkDecideDPoP(b *testing.B) {
	tb := newTestbed(b, nil)
	prover, err := dpoptest.NewProver("ES256")
	if err != nil {
		b.Fatal(err)
	}
	tok := tb.mint(b, "ES256", map[string]any{"cnf": map[string]any{"jkt": prover.JKT()}})
	const url = "https://api.example.com/v1/accounts/42"
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		proof, err := prover.Proof("GET", url, tok)
		if err != nil {
			b.Fatal(err)
		}
		req, err := decision.NewRequest(decision.RawRequest{Method: "GET", URL: url,
			Headers: map[string][]string{"authorization": {"DPoP " + tok}, "dpop": {proof}}})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		d, err := tb.app.decider.Decide(ctx, req)
		if err != nil || !d.Allow {
			b.Fatalf("decision: %v %+v", err, d)
		}
	}
}
