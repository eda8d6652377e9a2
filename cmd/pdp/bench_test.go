package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/token"
)

// BenchmarkDecideInProcess measures one decision without HTTP: token
// verification (a cache hit after the first) plus policy evaluation.
func BenchmarkDecideInProcess(b *testing.B) {
	tb := newTestbed(b, nil)
	req, err := decision.NewRequest(decision.RawRequest{
		Method:   "GET",
		URL:      "https://api.example.com/v1/accounts/42",
		Headers:  map[string][]string{"authorization": {"Bearer " + tb.mint(b, "ES256", nil)}, "user-agent": {"bench/1"}},
		RemoteIP: "203.0.113.7",
	})
	if err != nil {
		b.Fatal(err)
	}
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
	tb := newTestbed(b, nil)
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
