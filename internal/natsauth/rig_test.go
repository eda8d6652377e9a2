package natsauth

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/decisionlog"
	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

const (
	rigIss = "https://as.example.com"
	rigAud = "https://api.example.com"
)

// rigDestinations is the fixture destination table: NATS subjects by
// scope, a specific entry before a broader one (first match wins), and one
// RabbitMQ entry the service must leave alone.
var rigDestinations = []map[string]any{
	{"name": "order status", "broker": "nats", "destination": "orders.*.status", "operations": []string{"publish", "subscribe"},
		"audience": rigAud, "scopes": []string{"orders:status"}},
	{"name": "order events", "broker": "nats", "destination": "orders.>", "operations": []string{"publish", "subscribe"},
		"audience": rigAud, "scopes": []string{"orders:write"}},
	{"name": "audit", "broker": "nats", "destination": "audit.>", "operations": []string{"subscribe"},
		"audience": rigAud, "scopes": []string{"audit:read"}},
	{"name": "rabbit orders", "broker": "rabbitmq", "destination": "orders", "operations": []string{"publish"},
		"audience": rigAud, "scopes": []string{"orders:write"}},
}

// rig is a real nats-server configured for auth callout (accounts AUTH,
// APP, SYS), a real decision engine on the shipped policy with the
// fixture destinations, a bbolt store, and the service connected to both.
type rig struct {
	srv      *server.Server
	st       *store.Bolt
	issuer   *devissuer.Issuer
	svc      *Service
	decider  *decision.Engine
	verifier *token.Verifier
	engine   *policy.Engine
	url      string
	logs     *logRecorder
	// decisions are the decision-log entries the service wrote.
	decisions *entryRecorder
}

type rigOptions struct {
	maxLifetime    time.Duration
	maxConnections int
	xkey           bool
}

func newRig(t testing.TB, o rigOptions) *rig {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r := &rig{decisions: &entryRecorder{}, logs: &logRecorder{Handler: slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn})}}
	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{LockTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	builtins.SetStore(st)
	r.st = st
	r.issuer, err = devissuer.New(rigIss, "ES256")
	if err != nil {
		t.Fatal(err)
	}
	jwks := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(jwks, r.issuer.JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	r.verifier, err = token.NewVerifier(ctx, []config.Issuer{{
		Issuer: rigIss, JWKSFile: jwks, Audiences: []string{rigAud}, Algorithms: []string{"ES256"}, AccessTokenType: "at+jwt",
	}}, token.Options{Skew: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r.engine = policy.NewEngine(nil)
	set, err := policy.LoadDir("../../rego", policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	set.Data = withDestinations(t, set.Data)
	if err := r.engine.Activate(ctx, set); err != nil {
		t.Fatal(err)
	}
	r.decider = decision.NewEngine(ctx, r.verifier, r.engine, decision.Options{
		Environment: "staging", Timeout: 10 * time.Second, State: st,
	})

	issuerKey, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	issuerPub, _ := issuerKey.PublicKey()
	var xkey nkeys.KeyPair
	xkeyConf := ""
	if o.xkey {
		xkey, _ = nkeys.CreateCurveKeys()
		xpub, _ := xkey.PublicKey()
		xkeyConf = "xkey: " + xpub
	}
	r.srv = startServer(t, fmt.Sprintf(calloutConf, issuerPub, xkeyConf))
	r.url = r.srv.ClientURL()

	r.svc, err = New(r.decider, r.verifier, st, Options{
		Issuer: issuerKey, XKey: xkey, Account: "APP", MaxLifetime: o.maxLifetime, MaxConnections: o.maxConnections,
		CheckInterval: 200 * time.Millisecond, Destinations: rigTable(r.engine),
		Logger: slog.New(r.logs), DecisionLog: r.decisions,
	})
	if err != nil {
		t.Fatal(err)
	}
	callout, err := Dial(ConnOptions{URL: r.url, User: "auth", Password: "auth-pw", Name: "tokenguard-callout"})
	if err != nil {
		t.Fatal(err)
	}
	system, err := Dial(ConnOptions{URL: r.url, User: "sys", Password: "sys-pw", Name: "tokenguard-system"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := r.svc.Run(ctx, callout, system, "tokenguard"); err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	for !r.svc.connected.Load() {
		time.Sleep(5 * time.Millisecond)
	}
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		r.srv.Shutdown()
		builtins.SetStore(nil)
		st.Close()
	})
	return r
}

// calloutConf is the server's config: the callout user in AUTH, clients
// placed in APP, a system user that bypasses the callout.
const calloutConf = `
listen: "127.0.0.1:-1"
server_name: tokenguard-test
# access tokens are longer than the default 4 KiB control line allows
max_control_line: 32KB
accounts {
  AUTH { users: [ { user: auth, password: "auth-pw" } ] }
  APP {}
  SYS { users: [ { user: sys, password: "sys-pw" } ] }
}
system_account: SYS
authorization {
  timeout: 5s
  auth_callout {
    issuer: %s
    account: AUTH
    auth_users: [ auth, sys ]
    %s
  }
}
`

func startServer(t testing.TB, conf string) *server.Server {
	t.Helper()
	path := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatal(err)
	}
	opts.NoLog, opts.NoSigs = true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	return s
}

// withDestinations is a copy of the policy data with the fixture
// destination table in place of the shipped one, as JSON would give it.
func withDestinations(t testing.TB, data map[string]any) map[string]any {
	t.Helper()
	pdp := map[string]any{}
	for k, v := range data["pdp"].(map[string]any) {
		pdp[k] = v
	}
	pdp["destinations"] = rigDestinations
	pdp["unknown_destinations"] = "deny"
	copied := map[string]any{}
	for k, v := range data {
		copied[k] = v
	}
	copied["pdp"] = pdp
	b, err := json.Marshal(copied)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// mint signs a token for the rig's issuer; claims override the defaults.
func (r *rig) mint(t testing.TB, claims map[string]any) string {
	t.Helper()
	base := map[string]any{"aud": rigAud, "sub": "alice", "client_id": "orders-svc", "scope": "orders:write", "sid": "s-1",
		"gty": "client_credentials"}
	for k, v := range claims {
		base[k] = v
	}
	raw, err := r.issuer.Mint(base)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// connect connects to the rig's server with opts (the credential among
// them), never reconnecting.
func (r *rig) connect(opts ...nats.Option) (*nats.Conn, error) {
	opts = append([]nats.Option{nats.NoReconnect(), nats.Timeout(5 * time.Second)}, opts...)
	return nats.Connect(r.url, opts...)
}

// rigTable is the destination table the service reads: the active
// version's, as pdp serve wires it.
func rigTable(engine *policy.Engine) func() []Destination {
	return func() []Destination {
		var out []Destination
		for _, d := range engine.Settings().Destinations {
			out = append(out, Destination{Broker: d.Broker, Destination: d.Destination, Operations: d.Operations})
		}
		return out
	}
}

// logRecorder keeps the reason codes of the refusals the service logs, and
// writes its warnings to the test's output.
type logRecorder struct {
	slog.Handler
	mu      sync.Mutex
	reasons []string
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (l *logRecorder) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Message == "nats connect refused" {
		rec.Attrs(func(a slog.Attr) bool {
			if a.Key == "reasons" {
				if codes, ok := a.Value.Any().([]string); ok {
					l.mu.Lock()
					l.reasons = append(l.reasons, codes...)
					l.mu.Unlock()
				}
			}
			return true
		})
	}
	if l.Handler.Enabled(ctx, rec.Level) {
		return l.Handler.Handle(ctx, rec)
	}
	return nil
}

func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) reset() {
	l.mu.Lock()
	l.reasons = nil
	l.mu.Unlock()
}

// refusals are the reason codes logged since the last reset.
func (l *logRecorder) refusals() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.reasons...)
}

// entryRecorder keeps decision-log entries.
type entryRecorder struct {
	mu      sync.Mutex
	entries []decisionlog.Entry
}

func (e *entryRecorder) Log(_ context.Context, entry decisionlog.Entry) {
	e.mu.Lock()
	e.entries = append(e.entries, entry)
	e.mu.Unlock()
}

// take returns the entries written since the last take.
func (e *entryRecorder) take() []decisionlog.Entry {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.entries
	e.entries = nil
	return out
}
