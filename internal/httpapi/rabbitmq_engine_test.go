package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/decisionlog"
	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/httpapi"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// rabbitCred is the HTTP Basic credential the broker calls with.
const rabbitCred = "rabbitmq:0123456789abcdef0123456789abcdef"

// rabbitPDP is the real pipeline (bbolt, the shipped policy with test
// data, the token verifier) behind the RabbitMQ endpoints, on a clock the
// test moves.
type rabbitPDP struct {
	srv    *httptest.Server
	issuer *devissuer.Issuer
	logged *decisions
	store  *store.Bolt
	clock  atomic.Int64 // unix nanoseconds
}

func (p *rabbitPDP) now() time.Time { return time.Unix(0, p.clock.Load()) }

// rabbitPolicyData is the shipped data.json with RabbitMQ destinations:
// publishing to the exchange amq.topic and the routing keys orders.* needs
// orders:write, publishing to amq.direct payments:write, consuming from
// the queue audit audit:read; every role may hold them.
func rabbitPolicyData(t testing.TB) string {
	t.Helper()
	raw, err := os.ReadFile("../../rego/data.json")
	if err != nil {
		t.Fatal(err)
	}
	var data map[string]any
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatal(err)
	}
	pdp := data["pdp"].(map[string]any)
	dest := func(name, d string, ops []string, scope string) map[string]any {
		return map[string]any{"name": name, "broker": "rabbitmq", "destination": d, "operations": ops,
			"audience": audience, "scopes": []string{scope}}
	}
	pdp["destinations"] = []any{
		dest("order events exchange", "amq.topic", []string{"publish"}, "orders:write"),
		dest("order events", "orders.*", []string{"publish", "subscribe"}, "orders:write"),
		dest("payments exchange", "amq.direct", []string{"publish"}, "payments:write"),
		dest("audit queue", "audit", []string{"consume"}, "audit:read"),
	}
	pdp["unknown_destinations"] = "deny"
	for _, env := range pdp["environments"].(map[string]any) {
		roles := env.(map[string]any)["roles"].(map[string]any)
		for role, scopes := range roles {
			roles[role] = append(scopes.([]any), "orders:write", "payments:write", "audit:read")
		}
	}
	b, err := json.Marshal(data)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func newRabbitPDP(t testing.TB, data string) *rabbitPDP {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	p := &rabbitPDP{logged: &decisions{}}
	p.clock.Store(time.Now().UnixNano())
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	p.store = st
	builtins.SetStore(st)
	t.Cleanup(func() { builtins.SetStore(nil) })
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { p.issuer.JWKSHandler().ServeHTTP(w, r) }))
	t.Cleanup(jwks.Close)
	if p.issuer, err = devissuer.New(jwks.URL, "ES256"); err != nil {
		t.Fatal(err)
	}
	verifier, err := token.NewVerifier(ctx, []config.Issuer{{
		Issuer: jwks.URL, JWKSURI: jwks.URL + "/jwks", Audiences: []string{audience}, Algorithms: []string{"ES256"}, AccessTokenType: "at+jwt",
	}}, token.Options{Logger: logger, Now: p.now})
	if err != nil {
		t.Fatal(err)
	}
	engine := policy.NewEngine(logger)
	dir := t.TempDir()
	copyPolicy(t, "../../rego", dir)
	if err := os.WriteFile(filepath.Join(dir, "data.json"), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	set, err := policy.LoadDir(dir, policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if err := engine.Activate(ctx, set); err != nil {
		t.Fatal(err)
	}
	decider := decision.NewEngine(ctx, verifier, engine, decision.Options{
		Environment: "prod", Timeout: 5 * time.Second, State: st, Logger: logger, Now: p.now,
	})
	p.srv = httptest.NewServer(httpapi.New(httpapi.Options{
		Decider:     decider,
		Logger:      logger,
		DecisionLog: p.logged,
		RabbitMQ: &httpapi.RabbitMQ{Credential: rabbitCred, Tokens: verifier, Tags: []string{"management"},
			MaxTokens: 100, MaxTokensPerSubject: 16, MaxTokenAge: time.Hour, Now: p.now},
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// decisions are the decision-log entries the endpoints wrote.
type decisions struct {
	mu      sync.Mutex
	entries []decisionlog.Entry
}

func (d *decisions) Log(_ context.Context, e decisionlog.Entry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.entries = append(d.entries, e)
}

// count is the number of entries logged.
func (d *decisions) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.entries)
}

// until returns the reason codes of the decisions logged after the n-th
// up to the one whose id is given, waiting for it (entries are logged
// after the answer is written).
func (d *decisions) until(t *testing.T, n int, id string) []string {
	t.Helper()
	for range 500 {
		var codes []string
		d.mu.Lock()
		for _, e := range d.entries[min(n, len(d.entries)):] {
			for _, r := range e.Decision.Reasons {
				codes = append(codes, r.Code)
			}
			if e.Decision.ID == id {
				d.mu.Unlock()
				return codes
			}
		}
		d.mu.Unlock()
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("decision %s was never logged", id)
	return nil
}

// copyPolicy copies the shipped modules (not their tests) to dst.
func copyPolicy(t testing.TB, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o700)
		}
		if !strings.HasSuffix(path, ".rego") || strings.HasSuffix(path, "_test.rego") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o600)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (p *rabbitPDP) mint(t testing.TB, sub, scope string, claims map[string]any) string {
	t.Helper()
	now := p.now()
	c := map[string]any{"aud": audience, "sub": sub, "client_id": "orders-service", "scope": scope,
		"iat": now.Add(-10 * time.Second), "exp": now.Add(5 * time.Minute)}
	for k, v := range claims {
		c[k] = v
	}
	tok, err := p.issuer.Mint(c)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// ask sends one auth request as RabbitMQ does (POST form, or GET query)
// and returns the status, the body and the decision id.
func (p *rabbitPDP) ask(t testing.TB, method, path string, fields url.Values) (int, string, string) {
	t.Helper()
	var req *http.Request
	if method == http.MethodGet {
		req, _ = http.NewRequest(method, p.srv.URL+"/v1/rabbitmq/"+path+"?"+fields.Encode(), nil)
	} else {
		req, _ = http.NewRequest(method, p.srv.URL+"/v1/rabbitmq/"+path, strings.NewReader(fields.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	user, pass, _ := strings.Cut(rabbitCred, ":")
	req.SetBasicAuth(user, pass)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("X-Decision-Id")
}

func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v
}

// revoke writes a revocation, as the admin API, RFC 7009 or a SET would.
func (p *rabbitPDP) revoke(t *testing.T, kind store.Kind, value string) {
	t.Helper()
	now := p.now()
	if _, err := p.store.PutRevocation(context.Background(), store.Revocation{
		Kind: kind, Issuer: p.issuer.URL(), Value: value, Reason: "test", NotBefore: now, ExpiresAt: now.Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
}

// rabbitStep is one check RabbitMQ makes and the answer it must get.
type rabbitStep struct {
	name   string
	path   string
	fields url.Values
	want   string
	// reason is a reason code the step's decisions give; "-" when no
	// decision is made (no token kept, or not the token's subject).
	reason string
}

func (p *rabbitPDP) run(t *testing.T, steps []rabbitStep) {
	t.Helper()
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			for _, method := range []string{http.MethodPost, http.MethodGet} {
				before := p.logged.count()
				status, body, id := p.ask(t, method, s.path, s.fields)
				if status != http.StatusOK || body != s.want {
					t.Fatalf("%s /v1/rabbitmq/%s = %d %q, want 200 %q", method, s.path, status, body, s.want)
				}
				if s.reason == "-" {
					if id != "" {
						t.Fatalf("%s: decision %s was made, want none", method, id)
					}
					continue
				}
				if id == "" {
					t.Fatalf("%s: answered without a decision", method)
				}
				if codes := p.logged.until(t, before, id); s.reason != "" && !slices.Contains(codes, s.reason) {
					t.Fatalf("%s: reasons %v, want %s", method, codes, s.reason)
				}
			}
		})
	}
}

func vhost(user string) url.Values {
	return form("username", user, "vhost", "/", "ip", "203.0.113.7", "tags", "")
}

func resource(user, kind, name, permission string) url.Values {
	return form("username", user, "vhost", "/", "resource", kind, "name", name, "permission", permission, "tags", "")
}

func topic(user, exchange, permission, key string) url.Values {
	return form("username", user, "vhost", "/", "resource", "topic", "name", exchange, "permission", permission, "routing_key", key,
		"tags", "", "variable_map.username", user, "variable_map.vhost", "/")
}

// TestRabbitMQWithTheRealEngine asks the RabbitMQ endpoints what a broker
// asks, in its order, and the real pipeline (the shipped policy with
// RabbitMQ destinations, bbolt, the token verifier) decides.
func TestRabbitMQWithTheRealEngine(t *testing.T) {
	p := newRabbitPDP(t, rabbitPolicyData(t))
	alice := p.mint(t, "alice", "orders:write", nil)
	p.run(t, []rabbitStep{
		{"fail/vhost before any connect", "vhost", vhost("alice"), "deny", "-"},
		{"fail/connect with a token of another subject", "user", form("username", "mallory", "password", alice), "deny", "-"},
		{"fail/connect with an expired token", "user", form("username", "carol", "password",
			p.mint(t, "carol", "orders:write", map[string]any{"iat": p.now().Add(-time.Hour), "exp": p.now().Add(-30 * time.Minute)})), "deny", "token_expired"},
		{"fail/connect with a token of another audience", "user", form("username", "carol", "password",
			p.mint(t, "carol", "orders:write", map[string]any{"aud": "https://other.example.com"})), "deny", "audience_mismatch"},
		{"fail/connect with something else than a token", "user", form("username", "carol", "password", "guest"), "deny", "token_malformed"},
		{"fail/carol kept nothing", "vhost", vhost("carol"), "deny", "-"},
		{"ok/connect with a valid token, with the tags", "user", form("username", "alice", "password", alice), "allow management", ""},
		{"ok/vhost", "vhost", vhost("alice"), "allow", ""},
		{"ok/publish to a granted exchange", "resource", resource("alice", "exchange", "amq.topic", "write"), "allow", ""},
		{"ok/publish a granted routing key", "topic", topic("alice", "amq.topic", "write", "orders.created"), "allow", ""},
		{"ok/bind a granted routing key", "topic", topic("alice", "amq.topic", "read", "orders.created"), "allow", ""},
		{"fail/publish a routing key no destination grants", "topic", topic("alice", "amq.topic", "write", "payments.created"), "deny", "destination_unknown"},
		{"fail/publish to an exchange that needs another scope", "resource", resource("alice", "exchange", "amq.direct", "write"), "deny", "scope_insufficient"},
		{"fail/publish to an unknown exchange", "resource", resource("alice", "exchange", "amq.fanout", "write"), "deny", "destination_unknown"},
		{"fail/consume a queue that needs another scope", "resource", resource("alice", "queue", "audit", "read"), "deny", "scope_insufficient"},
		{"fail/configure what no destination lets configure", "resource", resource("alice", "exchange", "amq.topic", "configure"), "deny", "destination_unknown"},
		{"fail/another user's check", "resource", resource("bob", "exchange", "amq.topic", "write"), "deny", "-"},
	})

	// Two tokens of one subject: a check is allowed when one of them is.
	bobOrders := p.mint(t, "bob", "orders:write", map[string]any{"jti": "bob-orders"})
	bobAudit := p.mint(t, "bob", "audit:read", map[string]any{"jti": "bob-audit"})
	p.run(t, []rabbitStep{
		{"ok/connect with the first token", "user", form("username", "bob", "password", bobOrders), "allow management", ""},
		{"ok/connect with the second token", "user", form("username", "bob", "password", bobAudit), "allow management", ""},
		{"ok/the first token's exchange", "resource", resource("bob", "exchange", "amq.topic", "write"), "allow", ""},
		{"ok/the second token's queue", "resource", resource("bob", "queue", "audit", "read"), "allow", ""},
	})
	p.revoke(t, store.KindJTI, "bob-audit")
	p.run(t, []rabbitStep{
		{"fail/the revoked token's queue", "resource", resource("bob", "queue", "audit", "read"), "deny", "token_revoked"},
		{"ok/the other token still works", "resource", resource("bob", "exchange", "amq.topic", "write"), "allow", ""},
	})

	// A subject's revocation stops every check of every token kept for it.
	p.revoke(t, store.KindSubject, "alice")
	p.run(t, []rabbitStep{
		{"fail/vhost after the subject's revocation", "vhost", vhost("alice"), "deny", "subject_revoked"},
		{"fail/publish after the subject's revocation", "resource", resource("alice", "exchange", "amq.topic", "write"), "deny", "subject_revoked"},
		{"fail/routing key after the subject's revocation", "topic", topic("alice", "amq.topic", "write", "orders.created"), "deny", "subject_revoked"},
		{"ok/another subject is not revoked", "resource", resource("bob", "exchange", "amq.topic", "write"), "allow", ""},
	})

	// Past its exp (and the clock skew), a kept token answers no more.
	p.clock.Add(int64(6 * time.Minute))
	p.run(t, []rabbitStep{
		{"fail/a kept token past its exp", "resource", resource("bob", "exchange", "amq.topic", "write"), "deny", "-"},
		{"fail/connect again with it", "user", form("username", "bob", "password", bobOrders), "deny", "token_expired"},
	})
}

// BenchmarkRabbitMQResourceCheck measures one /v1/rabbitmq/resource check
// as RabbitMQ makes it (POST over loopback HTTP): allowed by the token
// kept, and denied after deciding each of 16 kept tokens (the bound per
// subject), the most a check costs.
func BenchmarkRabbitMQResourceCheck(b *testing.B) {
	p := newRabbitPDP(b, rabbitPolicyData(b))
	for i := range 16 {
		tok := p.mint(b, "alice", "orders:write", map[string]any{"jti": fmt.Sprintf("alice-%d", i)})
		if _, body, _ := p.ask(b, http.MethodPost, "user", form("username", "alice", "password", tok)); body != "allow management" {
			b.Fatalf("connect: %s", body)
		}
	}
	for _, bc := range []struct {
		name, exchange, want string
	}{
		{"allowed by the first token", "amq.topic", "allow"},
		{"denied by 16 tokens", "amq.direct", "deny"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			fields := resource("alice", "exchange", bc.exchange, "write")
			for b.Loop() {
				if _, body, _ := p.ask(b, http.MethodPost, "resource", fields); body != bc.want {
					b.Fatalf("= %s, want %s", body, bc.want)
				}
			}
		})
	}
}
