package builtins

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tokenguard/pdp/internal/store"
)

const iss = "https://as.example.com"

var (
	now = time.Now().Truncate(time.Second)
	cut = now.Add(-time.Hour) // the cut-off of the revocations below
)

// openStore opens a real store under t.TempDir() and sets it for the
// built-ins until the test ends.
func openStore(t *testing.T) *store.Bolt {
	t.Helper()
	s, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	SetStore(s)
	t.Cleanup(func() {
		SetStore(nil)
		s.Close()
	})
	return s
}

// eval evaluates query against input with strict built-in errors, as the
// decision path does, and returns the value bound to x (nil: undefined).
func eval(t *testing.T, query string, input any) (any, error) {
	t.Helper()
	rs, err := rego.New(rego.Query(query), rego.Input(input), rego.StrictBuiltinErrors(true)).Eval(context.Background())
	if err != nil {
		return nil, err
	}
	if len(rs) == 0 {
		return nil, nil
	}
	return rs[0].Bindings["x"], nil
}

func TestRevocation(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	exp := now.Add(time.Hour)
	for _, r := range []store.Revocation{
		{ID: "r-jti", Kind: store.KindJTI, Value: "jti-1", Reason: "stolen"},
		{ID: "r-sid", Kind: store.KindSession, Value: "sid-1", NotBefore: cut, Reason: "logout"},
		{ID: "r-sub", Kind: store.KindSubject, Value: "alice", NotBefore: cut, Reason: "password reset"},
		{ID: "r-cli", Kind: store.KindClient, Value: "app", NotBefore: cut, Reason: "client disabled"},
	} {
		r.Issuer, r.ExpiresAt = iss, exp
		if _, err := s.PutRevocation(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	jtiAt, err := s.GetRevocation(ctx, "r-jti")
	if err != nil {
		t.Fatal(err)
	}
	before, after := cut.Unix()-1, cut.Unix()+1

	tests := []struct {
		name  string
		token map[string]any
		want  map[string]any
	}{
		{"ok/not revoked", map[string]any{"iss": iss, "sub": "bob", "jti": "jti-2", "sid": "sid-2", "client_id": "other", "iat": before},
			map[string]any{"revoked": false}},
		{"revoked/jti, whatever the iat", map[string]any{"iss": iss, "jti": "jti-1", "iat": after},
			map[string]any{"revoked": true, "kind": "jti", "id": "r-jti", "at": jtiAt.NotBefore.UnixNano(), "reason": "stolen"}},
		{"revoked/session issued before the cut-off", map[string]any{"iss": iss, "sid": "sid-1", "iat": before},
			map[string]any{"revoked": true, "kind": "session", "id": "r-sid", "at": cut.UnixNano(), "reason": "logout"}},
		{"ok/session issued after the cut-off", map[string]any{"iss": iss, "sid": "sid-1", "iat": after},
			map[string]any{"revoked": false}},
		{"revoked/subject issued before the cut-off", map[string]any{"iss": iss, "sub": "alice", "iat": before},
			map[string]any{"revoked": true, "kind": "subject", "id": "r-sub", "at": cut.UnixNano(), "reason": "password reset"}},
		{"ok/subject issued after the cut-off", map[string]any{"iss": iss, "sub": "alice", "iat": after},
			map[string]any{"revoked": false}},
		{"ok/subject issued after the cut-off, fractional iat", map[string]any{"iss": iss, "sub": "alice", "iat": float64(cut.Unix()) + 0.5},
			map[string]any{"revoked": false}},
		{"revoked/subject, token without iat", map[string]any{"iss": iss, "sub": "alice"},
			map[string]any{"revoked": true, "kind": "subject", "id": "r-sub", "at": cut.UnixNano(), "reason": "password reset"}},
		{"revoked/client issued before the cut-off", map[string]any{"iss": iss, "client_id": "app", "iat": before},
			map[string]any{"revoked": true, "kind": "client", "id": "r-cli", "at": cut.UnixNano(), "reason": "client disabled"}},
		{"ok/client of another issuer", map[string]any{"iss": "https://other.example.com", "client_id": "app", "iat": before},
			map[string]any{"revoked": false}},
		{"revoked/jti wins over the other kinds", map[string]any{"iss": iss, "jti": "jti-1", "sid": "sid-1", "sub": "alice", "client_id": "app", "iat": before},
			map[string]any{"revoked": true, "kind": "jti", "id": "r-jti", "at": jtiAt.NotBefore.UnixNano(), "reason": "stolen"}},
		{"ok/other claims and null claims are ignored", map[string]any{"iss": iss, "sub": "bob", "sid": nil, "aud": []string{"api"}, "scope": "read", "iat": before},
			map[string]any{"revoked": false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := eval(t, "x := pdp.revocation(input.token)", map[string]any{"token": tt.token})
			if err != nil {
				t.Fatal(err)
			}
			want, gotV := ast.MustInterfaceToValue(tt.want), ast.MustInterfaceToValue(got)
			if want.Compare(gotV) != 0 {
				t.Errorf("pdp.revocation = %v, want %v", gotV, want)
			}
		})
	}
}

// The built-in as a policy uses it: a deny rule in a module.
func TestRevocationInPolicy(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	if _, err := s.PutRevocation(ctx, store.Revocation{Kind: store.KindSubject, Issuer: iss, Value: "alice", NotBefore: cut, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	pq, err := rego.New(
		rego.Query("data.pdp.test.deny"),
		rego.Module("test.rego", `package pdp.test

deny contains r.kind if {
	r := pdp.revocation(input.token)
	r.revoked
}
`),
		rego.StrictBuiltinErrors(true),
	).PrepareForEval(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct {
		iat  int64
		want string
	}{
		"revoked/issued before the logout": {cut.Unix() - 60, `["subject"]`},
		"ok/issued after the logout":       {cut.Unix() + 60, "[]"},
	} {
		t.Run(name, func(t *testing.T) {
			rs, err := pq.Eval(ctx, rego.EvalInput(map[string]any{"token": map[string]any{"iss": iss, "sub": "alice", "iat": tc.iat}}))
			if err != nil {
				t.Fatal(err)
			}
			if got := ast.MustInterfaceToValue(rs[0].Expressions[0].Value).String(); got != tc.want {
				t.Errorf("deny = %s, want %s", got, tc.want)
			}
		})
	}
}

func TestLastSeen(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	first := now.Add(-time.Minute)
	for _, at := range []time.Time{first, now} {
		if err := s.RecordFingerprint(ctx, "hash-1", store.Sighting{At: at, IP: netip.MustParseAddr("192.0.2.10"), UserAgent: "curl/8", ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}

	got, err := eval(t, "x := pdp.last_seen(input.h)", map[string]any{"h": "hash-1"})
	if err != nil {
		t.Fatal(err)
	}
	want := ast.MustInterfaceToValue(map[string]any{
		"first_seen": first.UnixNano(), "last_seen": now.UnixNano(),
		"ip": "192.0.2.10", "prefix": "192.0.2.0/24", "ua_hash": store.HashUserAgent("curl/8"), "count": 2,
	})
	if gotV := ast.MustInterfaceToValue(got); gotV.Compare(want) != 0 {
		t.Errorf("pdp.last_seen = %v, want %v", gotV, want)
	}

	// ua_hash is what Rego computes for the same header.
	same, err := eval(t, `x := pdp.last_seen("hash-1").ua_hash == crypto.sha256("curl/8")`, nil)
	if err != nil || same != true {
		t.Errorf("ua_hash == crypto.sha256(ua): %v, %v", same, err)
	}

	got, err = eval(t, "x := pdp.last_seen(input.h)", map[string]any{"h": "never-seen"})
	if err != nil || got != nil {
		t.Errorf("unknown token: %v, %v; want undefined", got, err)
	}
}

func TestNoStoreFailsClosed(t *testing.T) {
	SetStore(nil)
	for _, q := range []string{
		`x := pdp.revocation({"iss": "https://as.example.com", "jti": "j"})`,
		`x := pdp.last_seen("h")`,
	} {
		t.Run(q, func(t *testing.T) {
			_, err := eval(t, q, nil)
			if err == nil || !strings.Contains(err.Error(), ErrNoStore.Error()) {
				t.Fatalf("err = %v, want the no-store error", err)
			}
		})
	}

	// A store that fails fails the decision too.
	s, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	SetStore(s)
	defer SetStore(nil)
	_, err = eval(t, `x := pdp.revocation({"iss": "https://as.example.com", "jti": "j"})`, nil)
	if err == nil || !strings.Contains(err.Error(), "pdp.revocation: revocation lookup") {
		t.Fatalf("closed store: err = %v, want a revocation lookup error", err)
	}
	SetStore(nil)

	// Without strict errors OPA makes the expression undefined; it must
	// not read as "not revoked".
	rs, err := rego.New(rego.Query(`x := pdp.revocation({"iss": "https://as.example.com", "jti": "j"})`)).Eval(context.Background())
	if err != nil || len(rs) != 0 {
		t.Errorf("non-strict: %v, %v; want undefined", rs, err)
	}
}

func TestMalformedArguments(t *testing.T) {
	openStore(t)
	tests := []struct {
		name, query string
		input       any
		wantErr     string
	}{
		{"fail/token not an object", "x := pdp.revocation(input.t)", map[string]any{"t": "a.b.c"}, "token must be an object, got string"},
		{"fail/token is an array", "x := pdp.revocation(input.t)", map[string]any{"t": []any{1}}, "token must be an object, got array"},
		{"fail/no iss", "x := pdp.revocation(input.t)", map[string]any{"t": map[string]any{"jti": "j"}}, "token.iss must be a non-empty string"},
		{"fail/empty iss", "x := pdp.revocation(input.t)", map[string]any{"t": map[string]any{"iss": "", "jti": "j"}}, "token.iss must be a non-empty string"},
		{"fail/iss not a string", "x := pdp.revocation(input.t)", map[string]any{"t": map[string]any{"iss": 1}}, "token.iss must be a string, got number"},
		{"fail/sub not a string", "x := pdp.revocation(input.t)", map[string]any{"t": map[string]any{"iss": iss, "sub": []any{"a"}}}, "token.sub must be a string, got array"},
		{"fail/iat a string", "x := pdp.revocation(input.t)", map[string]any{"t": map[string]any{"iss": iss, "iat": "1700000000"}}, "token.iat must be a number of seconds, got string"},
		{"fail/iat negative", "x := pdp.revocation(input.t)", map[string]any{"t": map[string]any{"iss": iss, "iat": -1}}, "token.iat -1 is out of range"},
		{"fail/iat beyond 2262", "x := pdp.revocation(input.t)", map[string]any{"t": map[string]any{"iss": iss, "iat": 1e12}}, "out of range"},
		{"fail/iat huge", "x := pdp.revocation(input.t)", map[string]any{"t": map[string]any{"iss": iss, "iat": 1e300}}, "out of range"},
		{"fail/hash not a string", "x := pdp.last_seen(input.h)", map[string]any{"h": 42}, "token_hash must be a string, got number"},
		{"fail/hash empty", "x := pdp.last_seen(input.h)", map[string]any{"h": ""}, "token_hash must be 1 to 128 bytes long"},
		{"fail/hash too long", "x := pdp.last_seen(input.h)", map[string]any{"h": strings.Repeat("a", 129)}, "token_hash must be 1 to 128 bytes long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := eval(t, tt.query, tt.input)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}

	// Constant arguments of the wrong type are caught when compiling.
	for _, q := range []string{`x := pdp.revocation("a.b.c")`, `x := pdp.last_seen(42)`, `x := pdp.revocation({"iss": "i"}, 1)`} {
		if _, err := eval(t, q, nil); err == nil || !strings.Contains(err.Error(), "rego_type_error") {
			t.Errorf("%s: err = %v, want a type error", q, err)
		}
	}
}

// Registration at init makes the built-ins part of this build's
// capabilities, which the OPA command line and bundle compilers use.
func TestRegistered(t *testing.T) {
	caps := ast.CapabilitiesForThisVersion()
	for _, name := range []string{RevocationName, LastSeenName} {
		found := false
		for _, b := range caps.Builtins {
			if b.Name == name {
				found = true
				if !b.Nondeterministic {
					t.Errorf("%s is not marked nondeterministic", name)
				}
			}
		}
		if !found {
			t.Errorf("%s missing from the capabilities", name)
		}
	}
}
