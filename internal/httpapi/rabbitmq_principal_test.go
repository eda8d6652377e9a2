package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/token"
)

// principalTokens verifies any token "tok.<issuer>.<client>.<subject>".
type principalTokens struct{}

func (principalTokens) Verify(_ context.Context, raw string) (*token.Token, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 4 || parts[0] != "tok" {
		return nil, &token.Error{Code: token.CodeTokenMalformed, Message: "not a token"}
	}
	return &token.Token{Hash: token.HashToken(raw), Issuer: "https://" + parts[1], ClientID: parts[2], Subject: parts[3],
		ExpiresAt: time.Now().Add(time.Hour)}, nil
}

// strongOnly allows every connect, and any other operation only with a
// token of the issuer https://strong and the client admin-app.
type strongOnly struct{}

func (strongOnly) Decide(_ context.Context, req *decision.Request) (*decision.Decision, error) {
	d := &decision.Decision{ID: decision.NewID(), Status: 200}
	if v := req.Headers["authorization"]; len(v) == 1 {
		d.TokenHash = token.HashToken(strings.TrimPrefix(v[0], "Bearer "))
	}
	m := req.Message
	switch {
	case m.Operation == decision.OpConnect:
		d.Allow = true
	case m.Verified != nil && m.Verified.Issuer == "https://strong" && m.Verified.ClientID == "admin-app":
		d.TokenHash = m.Verified.Hash
		d.Allow = true
	default:
		d.Status = 403
		d.Reasons = []policy.Reason{{Code: "scope_insufficient"}}
	}
	return d, nil
}

// TestRabbitMQKeptTokensOfAnotherPrincipalAreNotShared: the later checks
// carry the username alone, so every connection of that username is
// decided with every token kept for it. A token of another issuer, or of
// another client, that merely has the same subject must not connect while
// the subject's kept tokens are another principal's: its connection would
// be decided with their rights.
func TestRabbitMQKeptTokensOfAnotherPrincipalAreNotShared(t *testing.T) {
	for _, tc := range []struct {
		name, second, want string
	}{
		{"fail/a token of another issuer with the same subject", "tok.weak.admin-app.alice", "deny"},
		{"fail/a client's token whose subject is the user's", "tok.strong.batch-job.alice", "deny"},
		{"ok/another token of the same issuer and client", "tok.strong.admin-app.alice", "allow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := chi.NewRouter()
			mountRabbitMQ(r, RabbitMQ{Credential: testRabbitCred, Tokens: principalTokens{}, MaxTokens: 10, MaxTokensPerSubject: 4,
				MaxTokenAge: time.Hour}, strongOnly{}, slog.New(slog.DiscardHandler), observer{})
			ask := func(path, body string) string {
				rec := httptest.NewRecorder()
				r.ServeHTTP(rec, rabbitRequest(http.MethodPost, path, body, basicOf(testRabbitCred)))
				return rec.Body.String()
			}
			if got := ask("user", "username=alice&password=tok.strong.admin-app.alice"); got != "allow" {
				t.Fatalf("alice's own connect = %q", got)
			}
			if got := ask("user", "username=alice&password="+tc.second); got != tc.want {
				t.Fatalf("second connect = %q, want %q", got, tc.want)
			}
		})
	}
}
