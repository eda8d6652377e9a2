package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/token"
)

// TestRabbitMQKeepsAnIntrospectedTokenNoLongerThanItsIntrospection: an
// opaque token is verified by introspection, whose answer is trusted for
// the issuer's cache_ttl only. Kept for RabbitMQ's later checks, it must
// not outlive that: a token the authorization server deactivated would
// otherwise go on publishing for max_token_age (12h by default).
func TestRabbitMQKeepsAnIntrospectedTokenNoLongerThanItsIntrospection(t *testing.T) {
	var clock atomic.Int64
	clock.Store(time.Unix(1_800_000_000, 0).UnixNano())
	now := func() time.Time { return time.Unix(0, clock.Load()) }
	var active atomic.Bool
	active.Store(true)
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if !active.Load() {
			fmt.Fprint(w, `{"active":false}`)
			return
		}
		fmt.Fprintf(w, `{"active":true,"sub":"alice","client_id":"c","aud":"https://api.example","exp":%d}`, now().Add(6*time.Hour).Unix())
	}))
	defer as.Close()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := token.NewVerifier(context.Background(), []config.Issuer{{
		Issuer: "https://as.example", Audiences: []string{"https://api.example"},
		Introspection: &config.Introspection{Endpoint: as.URL, ClientID: "pdp", ClientSecretFile: secret,
			CacheTTL: time.Minute, Timeout: time.Second},
	}}, token.Options{Now: now})
	if err != nil {
		t.Fatal(err)
	}
	d := &allowAll{}
	r := chi.NewRouter()
	mountRabbitMQ(r, RabbitMQ{Credential: testRabbitCred, Tokens: v, MaxTokens: 10, MaxTokensPerSubject: 4, MaxTokenAge: 12 * time.Hour,
		Now: now}, d, slog.New(slog.DiscardHandler), observer{})
	ask := func(path, body string) string {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, rabbitRequest(http.MethodPost, path, body, basicOf(testRabbitCred)))
		return rec.Body.String()
	}
	const publish = "username=alice&vhost=%2F&resource=exchange&name=orders&permission=write"
	if got := ask("user", "username=alice&password=opaque-alice-token"); got != "allow" {
		t.Fatalf("connect = %q", got)
	}
	for _, step := range []struct {
		name  string
		after time.Duration
		want  string
	}{
		{"ok/within the introspection's cache_ttl", 30 * time.Second, "allow"},
		{"fail/past the introspection's cache_ttl, deactivated meanwhile", 2 * time.Minute, "deny"},
	} {
		t.Run(step.name, func(t *testing.T) {
			active.Store(false) // the authorization server revoked it
			clock.Store(time.Unix(1_800_000_000, 0).Add(step.after).UnixNano())
			if got := ask("resource", publish); got != step.want {
				t.Fatalf("publish %s after the connect = %q, want %q", step.after, got, step.want)
			}
		})
	}
}
