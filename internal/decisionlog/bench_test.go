package decisionlog

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/policy"
)

// benchDecision is an allowed bearer decision with an input the size of
// the shipped policy's (request, verified token, client, environment).
func benchDecision(b *testing.B) *decision.Decision {
	in, err := ast.InterfaceToValue(map[string]any{
		"request": map[string]any{
			"method": "GET", "url": "https://api.example.com/v1/accounts/42", "host": "api.example.com", "path": "/v1/accounts/42",
			"query":     map[string]any{"page": []any{"2"}},
			"headers":   map[string]any{"authorization": []any{"Bearer x"}, "user-agent": []any{"curl/8"}, "accept": []any{"*/*"}, "x-request-id": []any{"0f8e2c"}, "x-forwarded-for": []any{"203.0.113.7"}},
			"remote_ip": "203.0.113.7", "tls": map[string]any{"client_cert_thumbprint": ""},
		},
		"token": map[string]any{"present": true, "valid": true, "type": "bearer", "hash": "dG9rZW4taGFzaA", "claims": map[string]any{
			"iss": "https://as.example.com", "sub": "alice", "aud": []any{"https://api.example.com"}, "client_id": "web-app",
			"scope": "accounts:read accounts:write", "exp": 1893456000, "iat": 1893452400, "nbf": 1893452400, "jti": "b0c5e1a2", "auth_time": 1893452300, "acr": "urn:mace:incommon:iap:silver",
		}},
		"client":      map[string]any{"id": "web-app", "allowed_cidrs": []any{"203.0.113.0/24"}},
		"environment": "prod", "now": 1893453000,
	})
	if err != nil {
		b.Fatal(err)
	}
	return &decision.Decision{
		ID: decision.NewID(), Allow: true, Status: 200,
		Reasons: []policy.Reason{}, Warnings: []policy.Reason{},
		UpstreamHeaders: map[string]string{"x-tokenguard-subject": "alice", "x-tokenguard-client": "web-app"},
		Token:           &decision.TokenSummary{Issuer: "https://as.example.com", Subject: "alice", ClientID: "web-app", GrantType: "authorization_code", Scopes: []string{"accounts:read", "accounts:write"}},
		Policy:          decision.PolicyRef{Revision: "rev-1", Module: "grants.authorization_code"},
		TokenHash:       "dG9rZW4taGFzaA", GrantType: "authorization_code", Input: in,
	}
}

// BenchmarkEncode is the logger goroutine's work per decision: mask,
// event JSON and console line.
func BenchmarkEncode(b *testing.B) {
	enc := newEncoder(map[string]string{"id": "x", "version": "1"})
	l := &Logger{}
	r := record{dec: benchDecision(b), latency: time.Millisecond, by: "127.0.0.1:4000", ts: time.Now()}
	var ev, line []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if ev, err = enc.appendEvent(ev[:0], r); err != nil {
			b.Fatal(err)
		}
		line = l.appendConsole(line[:0], ev, r)
	}
	b.SetBytes(int64(len(line)))
}

// BenchmarkLog is the request path's part: the hand-off to the queue.
// The queue is written out (to io.Discard) between rounds, outside the
// timer, so that every hand-off is queued, none dropped.
func BenchmarkLog(b *testing.B) {
	l, err := New(context.Background(), config.DecisionLogs{Console: true, SampleRate: 1, Queue: 8192}, Options{Console: io.Discard})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Stop(context.Background())
	e := Entry{Decision: benchDecision(b), Latency: time.Millisecond, RequestedBy: "127.0.0.1:4000", Time: time.Now()}
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		l.Log(context.Background(), e)
		if n++; n%4096 == 0 {
			b.StopTimer()
			if err := l.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
	}
	b.ReportMetric(float64(l.Status().QueueFull)/float64(n), "dropped/op")
}
