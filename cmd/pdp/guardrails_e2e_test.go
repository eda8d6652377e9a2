package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
	"github.com/tokenguard/pdp/internal/token"
)

// guardrailData is the policy data of the guardrail tests: the shipped
// modules, driven by routes, clients and modes made for each case.
const guardrailData = `{"pdp": {
  "routes": [
    {"name": "read accounts", "methods": ["GET"], "host": "api.example.com", "path": "/v1/accounts/*",
     "audience": "https://api.example.com", "scopes": ["accounts:read"],
     "grant_types": ["authorization_code", "refresh_token", "device_code", "token_exchange", "client_credentials"]},
    {"name": "write accounts", "methods": ["POST"], "host": "api.example.com", "path": "/v1/accounts/*",
     "audience": "https://api.example.com", "scopes": ["accounts:write"], "grant_types": ["authorization_code"]},
    {"name": "payments", "methods": ["POST"], "host": "api.example.com", "path": "/v1/payments",
     "audience": "https://api.example.com", "scopes": ["payments:write"],
     "authorization_details": {"type": "payment_initiation", "actions": ["initiate"]}},
    {"name": "billing", "methods": ["GET"], "host": "billing.example.com", "path": "/v1/**",
     "audience": "https://billing.example.com", "scopes": ["billing:read"]}
  ],
  "unknown_routes": "deny",
  "lifetimes": {
    "default": {"max_lifetime": "1h", "max_age": "1h"},
    "grant_types": {"client_credentials": {"max_lifetime": "15m"}},
    "clients": {"legacy-batch": {"max_lifetime": "5m"}, "long-lived": {"max_lifetime": "24h"}}
  },
  "environments": {
    "prod": {"roles": {"user": ["accounts:read", "payments:write", "billing:read"], "support": ["accounts:read"],
                       "admin": ["accounts:read", "accounts:write"]},
             "default_roles": ["user"], "frozen_scopes": ["accounts:write"]}
  },
  "clients": {
    "payments-job": {"allowed_cidrs": ["10.20.0.0/16"], "sender_constraint": "dpop"},
    "mtls-job": {"sender_constraint": "mtls"},
    "monitored": {"modes": {"lifetime": "monitor", "fingerprint": "monitor"}},
    "monitored-lifetime": {"modes": {"lifetime": "monitor"}}
  },
  "fingerprint": {"ipv4_prefix": 24, "ipv6_prefix": 56},
  "modes": {"dpop": "enforce", "fingerprint": "enforce"},
  "token_endpoint": {"url": "https://as.example.com/token", "refresh_reuse": "revoke_session", "refresh_max_age": "720h"},
  "token_exchange": {"max_delegation_depth": 2}
}}`

func newGuardrailTestbed(t *testing.T, mutate func(*config.Config)) *testbed {
	t.Helper()
	dir := policyWithData(t, guardrailData)
	return newTestbed(t, func(c *config.Config) {
		c.Policy.Dir = dir
		for i := range c.Issuers {
			c.Issuers[i].Audiences = append(c.Issuers[i].Audiences, "https://billing.example.com")
		}
		if mutate != nil {
			mutate(c)
		}
	})
}

// at returns the extra request members for a call to method url.
func at(method, url string) map[string]any { return map[string]any{"method": method, "url": url} }

func with(m map[string]any, kv ...any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func hasWarning(d decideResponse, code string) bool {
	for _, w := range d.Warnings {
		if w.Code == code {
			return true
		}
	}
	return false
}

func TestGuardrailLifetime(t *testing.T) {
	tb := newGuardrailTestbed(t, nil)
	now := time.Now()
	tests := []struct {
		name   string
		claims map[string]any
		want   want
	}{
		{"ok/30 minute token", map[string]any{"exp": now.Add(30 * time.Minute).Unix()}, want{true, 200, ""}},
		{"fail/2 hour token", map[string]any{"exp": now.Add(2 * time.Hour).Unix()}, want{false, 401, "lifetime_exceeded"}},
		{"fail/used 2 hours after issue", map[string]any{"client_id": "long-lived", "iat": now.Add(-2 * time.Hour).Unix(), "exp": now.Add(time.Hour).Unix()}, want{false, 401, "token_too_old"}},
		{"fail/client limit over the default", map[string]any{"client_id": "legacy-batch", "exp": now.Add(10 * time.Minute).Unix()}, want{false, 401, "lifetime_exceeded"}},
		{"fail/grant type limit over the default", map[string]any{"sub": "svc", "client_id": "svc", "exp": now.Add(30 * time.Minute).Unix()}, want{false, 401, "lifetime_exceeded"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, tb.decide(t, bearer(tb.mint(t, "ES256", tt.claims)), nil), tt.want)
		})
	}
	t.Run("ok/monitor mode warns and allows", func(t *testing.T) {
		d := tb.decide(t, bearer(tb.mint(t, "ES256", map[string]any{"client_id": "monitored", "exp": now.Add(2 * time.Hour).Unix()})), nil)
		check(t, d, want{true, 200, ""})
		if !hasWarning(d, "lifetime_exceeded") {
			t.Errorf("warnings = %v, want lifetime_exceeded", d.Warnings)
		}
	})
}

func TestGuardrailScope(t *testing.T) {
	tb := newGuardrailTestbed(t, nil)
	t.Run("fail/never granted is insufficient_scope with the scope", func(t *testing.T) {
		d := tb.decide(t, bearer(tb.mint(t, "ES256", map[string]any{"scope": "profile"})), nil)
		check(t, d, want{false, 403, "scope_insufficient"})
		if c := d.Headers["www-authenticate"]; !strings.Contains(c, `error="insufficient_scope"`) || !strings.Contains(c, `scope="accounts:read"`) {
			t.Errorf("challenge = %q", c)
		}
	})
	t.Run("fail/a frozen scope is restricted", func(t *testing.T) {
		tok := tb.mint(t, "ES256", map[string]any{"scope": "accounts:read accounts:write", "roles": []string{"admin"}})
		check(t, tb.decide(t, bearer(tok), at("POST", "https://api.example.com/v1/accounts/42")), want{false, 403, "scope_restricted"})
	})
	t.Run("fail/a scope the role does not allow is restricted", func(t *testing.T) {
		tok := tb.mint(t, "ES256", map[string]any{"scope": "payments:write", "roles": []string{"support"}})
		check(t, tb.decide(t, bearer(tok), at("POST", "https://api.example.com/v1/payments")), want{false, 403, "scope_restricted"})
	})
	t.Run("ok/the effective scopes go upstream", func(t *testing.T) {
		tok := tb.mint(t, "ES256", map[string]any{"scope": "accounts:read accounts:write payments:write", "roles": []string{"support"}})
		d := tb.decide(t, bearer(tok), nil)
		check(t, d, want{true, 200, ""})
		if got := d.UpstreamHeaders["x-tokenguard-scopes"]; got != "accounts:read" {
			t.Errorf("x-tokenguard-scopes = %q, want only the effective scope", got)
		}
	})
}

// dpopRequest builds a DPoP-scheme request with proof for method url.
func dpopRequest(t *testing.T, p *dpoptest.Prover, tok, method, url string, opts ...dpoptest.ProofOption) (map[string]any, map[string]any) {
	t.Helper()
	proof, err := p.Proof(method, url, tok, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{"authorization": "DPoP " + tok, "dpop": proof}, at(method, url)
}

func TestGuardrailDPoP(t *testing.T) {
	tb := newGuardrailTestbed(t, nil)
	const url = "https://api.example.com/v1/accounts/42"
	prover, _ := dpoptest.NewProver("ES256")
	other, _ := dpoptest.NewProver("EdDSA")
	bound := tb.mint(t, "ES256", map[string]any{"cnf": map[string]any{"jkt": prover.JKT()}})

	t.Run("ok/bound token with its proof", func(t *testing.T) {
		h, r := dpopRequest(t, prover, bound, "GET", url)
		check(t, tb.decide(t, h, r), want{true, 200, ""})
	})
	t.Run("ok/proof for the normalised URL", func(t *testing.T) {
		h, r := dpopRequest(t, prover, bound, "GET", "HTTPS://API.Example.com:443/v1/accounts/42")
		r["url"] = url
		check(t, tb.decide(t, h, r), want{true, 200, ""})
	})
	t.Run("fail/D1 two proofs", func(t *testing.T) {
		h, r := dpopRequest(t, prover, bound, "GET", url)
		second, _ := prover.Proof("GET", url, bound)
		h["dpop"] = []string{h["dpop"].(string), second}
		check(t, tb.decide(t, h, r), want{false, 401, "dpop_proof_invalid"})
	})
	t.Run("fail/D2 typ JWT", func(t *testing.T) {
		h, r := dpopRequest(t, prover, bound, "GET", url, dpoptest.WithHeader("typ", "JWT"))
		d := tb.decide(t, h, r)
		check(t, d, want{false, 401, "dpop_proof_invalid"})
		if c := d.Headers["www-authenticate"]; !strings.HasPrefix(c, "DPoP ") || !strings.Contains(c, `error="invalid_dpop_proof"`) || !strings.Contains(c, "algs=") {
			t.Errorf("challenge = %q", c)
		}
	})
	t.Run("fail/D3 signed by another key", func(t *testing.T) {
		h, r := dpopRequest(t, prover, bound, "GET", url, dpoptest.WithSigner(other))
		check(t, tb.decide(t, h, r), want{false, 401, "dpop_proof_invalid"})
	})
	t.Run("fail/D4 no jti", func(t *testing.T) {
		h, r := dpopRequest(t, prover, bound, "GET", url, dpoptest.WithClaim("jti", nil))
		check(t, tb.decide(t, h, r), want{false, 401, "dpop_proof_invalid"})
	})
	t.Run("fail/D5 a POST proof on GET", func(t *testing.T) {
		proof, _ := prover.Proof("POST", url, bound)
		check(t, tb.decide(t, map[string]any{"authorization": "DPoP " + bound, "dpop": proof}, nil), want{false, 401, "dpop_proof_invalid"})
	})
	t.Run("fail/D6 http instead of https", func(t *testing.T) {
		proof, _ := prover.Proof("GET", "http://api.example.com/v1/accounts/42", bound)
		check(t, tb.decide(t, map[string]any{"authorization": "DPoP " + bound, "dpop": proof}, nil), want{false, 401, "dpop_proof_invalid"})
	})
	t.Run("fail/D7 iat an hour ago", func(t *testing.T) {
		h, r := dpopRequest(t, prover, bound, "GET", url, dpoptest.WithIssuedAt(time.Now().Add(-time.Hour)))
		check(t, tb.decide(t, h, r), want{false, 401, "dpop_proof_invalid"})
	})
	t.Run("fail/D8 the same proof twice", func(t *testing.T) {
		h, r := dpopRequest(t, prover, bound, "GET", url)
		check(t, tb.decide(t, h, r), want{true, 200, ""})
		check(t, tb.decide(t, h, r), want{false, 401, "dpop_replayed"})
	})
	t.Run("fail/D9 ath of another token", func(t *testing.T) {
		h, r := dpopRequest(t, prover, bound, "GET", url, dpoptest.WithClaim("ath", dpoptest.ATH("other-token")))
		check(t, tb.decide(t, h, r), want{false, 401, "dpop_proof_invalid"})
	})
	t.Run("fail/D10 a valid proof by a different key", func(t *testing.T) {
		h, r := dpopRequest(t, other, bound, "GET", url)
		check(t, tb.decide(t, h, r), want{false, 401, "dpop_binding_mismatch"})
	})
	t.Run("fail/D11 bound token as bearer", func(t *testing.T) {
		check(t, tb.decide(t, bearer(bound), nil), want{false, 401, "dpop_required"})
	})
	t.Run("fail/D11 client that must use DPoP with a bearer token", func(t *testing.T) {
		tok := tb.mint(t, "ES256", map[string]any{"sub": "payments-job", "client_id": "payments-job", "exp": time.Now().Add(10 * time.Minute).Unix()})
		check(t, tb.decide(t, bearer(tok), with(nil, "remote_ip", "10.20.1.1")), want{false, 401, "sender_constraint_required"})
	})
}

func TestGuardrailDPoPNonces(t *testing.T) {
	tb := newGuardrailTestbed(t, func(c *config.Config) { c.DPoP.Nonce.Enabled = true })
	const url = "https://api.example.com/v1/accounts/42"
	prover, _ := dpoptest.NewProver("ES256")
	bound := tb.mint(t, "ES256", map[string]any{"cnf": map[string]any{"jkt": prover.JKT()}})
	h, r := dpopRequest(t, prover, bound, "GET", url)
	d := tb.decide(t, h, r)
	check(t, d, want{false, 401, "dpop_nonce_required"})
	nonce := d.Headers["dpop-nonce"]
	if nonce == "" || !strings.Contains(d.Headers["www-authenticate"], `error="use_dpop_nonce"`) {
		t.Fatalf("headers = %v, want a use_dpop_nonce challenge and a DPoP-Nonce", d.Headers)
	}
	h, r = dpopRequest(t, prover, bound, "GET", url, dpoptest.WithNonce(nonce))
	d = tb.decide(t, h, r)
	check(t, d, want{true, 200, ""})
	if d.Headers["dpop-nonce"] == "" {
		t.Error("an allow with nonces on carries no fresh DPoP-Nonce")
	}
	h, r = dpopRequest(t, prover, bound, "GET", url, dpoptest.WithNonce("forged-nonce"))
	check(t, tb.decide(t, h, r), want{false, 401, "dpop_nonce_required"})
}

func TestGuardrailMTLS(t *testing.T) {
	tb := newGuardrailTestbed(t, nil)
	certPEM, thumb := selfSignedCert(t)
	other, _ := selfSignedCert(t)
	bound := tb.mint(t, "ES256", map[string]any{"cnf": map[string]any{"x5t#S256": thumb}})
	check(t, tb.decide(t, bearer(bound), with(nil, "tls_client_cert", certPEM)), want{true, 200, ""})
	check(t, tb.decide(t, bearer(bound), with(nil, "tls_client_cert", other)), want{false, 401, "mtls_binding_mismatch"})
	check(t, tb.decide(t, bearer(bound), nil), want{false, 401, "mtls_binding_mismatch"})
	plain := tb.mint(t, "ES256", map[string]any{"sub": "mtls-job", "client_id": "mtls-job", "exp": time.Now().Add(10 * time.Minute).Unix()})
	check(t, tb.decide(t, bearer(plain), with(nil, "tls_client_cert", certPEM)), want{false, 401, "sender_constraint_required"})
}

func TestGuardrailNetwork(t *testing.T) {
	tb := newGuardrailTestbed(t, nil)
	prover, _ := dpoptest.NewProver("ES256")
	tok := tb.mint(t, "ES256", map[string]any{"sub": "payments-job", "client_id": "payments-job", "cnf": map[string]any{"jkt": prover.JKT()},
		"exp": time.Now().Add(10 * time.Minute).Unix()})
	const url = "https://api.example.com/v1/accounts/42"
	for _, tt := range []struct {
		name, ip string
		want     want
	}{
		{"ok/inside the allowed range", "10.20.7.9", want{true, 200, ""}},
		{"fail/outside the allowed range", "203.0.113.7", want{false, 403, "ip_not_allowed"}},
		{"fail/no client address", "", want{false, 403, "ip_not_allowed"}},
		{"fail/a client-sent X-Forwarded-For is not trusted", "203.0.113.7", want{false, 403, "ip_not_allowed"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, r := dpopRequest(t, prover, tok, "GET", url)
			h["x-forwarded-for"] = "10.20.7.9"
			h["x-real-ip"] = "10.20.7.9"
			if tt.ip != "" {
				r["remote_ip"] = tt.ip
			}
			check(t, tb.decide(t, h, r), tt.want)
		})
	}
}

// waitFingerprint waits until the asynchronous recorder stored the
// fingerprint of tok.
func waitFingerprint(t *testing.T, tb *testbed, tok string) {
	t.Helper()
	for range 500 {
		if _, ok, err := tb.app.store.LastSeen(context.Background(), tokenHash(tok)); err == nil && ok {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the fingerprint was never recorded")
}

func TestGuardrailFingerprint(t *testing.T) {
	tb := newGuardrailTestbed(t, nil)
	from := func(ip, _ string) map[string]any { return with(nil, "remote_ip", ip) }
	hdr := func(tok, ua string) map[string]any {
		return map[string]any{"authorization": "Bearer " + tok, "user-agent": ua}
	}
	tok := tb.mint(t, "ES256", nil)
	check(t, tb.decide(t, hdr(tok, "app/1.0"), from("203.0.113.7", "")), want{true, 200, ""})
	waitFingerprint(t, tb, tok)
	t.Run("ok/same network prefix and user-agent", func(t *testing.T) {
		check(t, tb.decide(t, hdr(tok, "app/1.0"), from("203.0.113.99", "")), want{true, 200, ""})
	})
	t.Run("fail/another network", func(t *testing.T) {
		check(t, tb.decide(t, hdr(tok, "app/1.0"), from("198.51.100.4", "")), want{false, 401, "token_replay_suspected"})
	})
	t.Run("fail/another user-agent", func(t *testing.T) {
		check(t, tb.decide(t, hdr(tok, "curl/8.5.0"), from("203.0.113.7", "")), want{false, 401, "token_replay_suspected"})
	})
	t.Run("fail/a token expiring in the last second a store can hold (2262) is fingerprinted like any other", func(t *testing.T) {
		far := tb.mint(t, "ES256", map[string]any{"client_id": "monitored-lifetime", "exp": int64(9223372036)})
		d := tb.decide(t, hdr(far, "app/1.0"), from("203.0.113.7", ""))
		if !d.Allow {
			t.Fatalf("a long-lived token of a client whose lifetime guardrail monitors: %v", d.codes())
		}
		waitFingerprint(t, tb, far)
		if d := tb.decide(t, hdr(far, "app/1.0"), from("198.51.100.4", "")); d.Allow {
			t.Fatalf("another network passed: %+v", d)
		}
	})
	t.Run("ok/monitor mode warns and keeps the first fingerprint", func(t *testing.T) {
		mon := tb.mint(t, "ES256", map[string]any{"client_id": "monitored"})
		check(t, tb.decide(t, hdr(mon, "app/1.0"), from("203.0.113.7", "")), want{true, 200, ""})
		waitFingerprint(t, tb, mon)
		d := tb.decide(t, hdr(mon, "app/1.0"), from("198.51.100.4", ""))
		check(t, d, want{true, 200, ""})
		if !hasWarning(d, "token_replay_suspected") {
			t.Errorf("warnings = %v", d.Warnings)
		}
		fp, _, _ := tb.app.store.LastSeen(context.Background(), tokenHash(mon))
		if fp.IP != "203.0.113.7" {
			t.Errorf("fingerprint IP = %q: a suspected sighting replaced the baseline", fp.IP)
		}
	})
}

// immediateReplays presents n bearer tokens from one network and, at once,
// from another: every second presentation must be suspected, though its
// sighting from the first network is still on its way to the store. With
// one token, the same token goes back and forth (its earlier sightings are
// being written meanwhile).
func immediateReplays(t *testing.T, n int, oneToken bool, mint func() string, decide func(headers, extra map[string]any) decideResponse) {
	t.Helper()
	tok := mint()
	for i := range n {
		if !oneToken && i > 0 {
			tok = mint()
		}
		hdr := map[string]any{"authorization": "Bearer " + tok, "user-agent": "app/1.0"}
		if d := decide(hdr, with(nil, "remote_ip", "198.51.100.7")); !d.Allow {
			t.Fatalf("iteration %d: from the first network: %v", i, d.Reasons)
		}
		d := decide(hdr, with(nil, "remote_ip", "203.0.113.50"))
		if d.Allow || !slices.Contains(d.codes(), "token_replay_suspected") {
			t.Fatalf("iteration %d: at once from another network: allow=%v %v, want token_replay_suspected", i, d.Allow, d.Reasons)
		}
	}
}

func TestGuardrailFingerprintImmediateReplay(t *testing.T) {
	tb := newGuardrailTestbed(t, nil)
	decide := func(h, extra map[string]any) decideResponse { return tb.decide(t, h, extra) }
	mint := func() string { return tb.mint(t, "ES256", nil) }
	t.Run("fail/a new token replayed at once from another network, 1000 times", func(t *testing.T) {
		immediateReplays(t, 1000, false, mint, decide)
	})
	t.Run("fail/one token alternating between networks, 1000 times", func(t *testing.T) {
		immediateReplays(t, 1000, true, mint, decide)
	})
}

func TestGuardrailRouteAndGrantIntent(t *testing.T) {
	tb := newGuardrailTestbed(t, nil)
	now := time.Now()
	payment := []map[string]any{{"type": "payment_initiation", "actions": []string{"initiate"}}}
	tests := []struct {
		name    string
		claims  map[string]any
		request map[string]any
		want    want
	}{
		{"fail/unknown route", nil, at("GET", "https://api.example.com/v2/other"), want{false, 403, "route_unknown"}},
		{"fail/unknown host", nil, at("GET", "https://evil.example.com/v1/accounts/42"), want{false, 403, "route_unknown"}},
		{"fail/the token is for another API", map[string]any{"aud": "https://api.example.com", "scope": "billing:read"},
			at("GET", "https://billing.example.com/v1/invoices/7"), want{false, 401, "audience_mismatch"}},
		{"ok/resource of the route", map[string]any{"aud": "https://billing.example.com", "scope": "billing:read"},
			at("GET", "https://billing.example.com/v1/invoices/7"), want{true, 200, ""}},
		{"fail/a read scope never passes a write route", map[string]any{"scope": "accounts:read"},
			at("POST", "https://api.example.com/v1/accounts/42"), want{false, 403, "scope_insufficient"}},
		{"fail/client token on a user-only route", map[string]any{"sub": "svc", "client_id": "svc", "scope": "accounts:write", "exp": now.Add(10 * time.Minute).Unix()},
			at("POST", "https://api.example.com/v1/accounts/42"), want{false, 403, "grant_type_not_allowed"}},
		{"ok/authorization details fit the route", map[string]any{"scope": "payments:write", "authorization_details": payment},
			at("POST", "https://api.example.com/v1/payments"), want{true, 200, ""}},
		{"fail/authorization details for another action", map[string]any{"scope": "payments:write",
			"authorization_details": []map[string]any{{"type": "payment_initiation", "actions": []string{"cancel"}}}},
			at("POST", "https://api.example.com/v1/payments"), want{false, 403, "grant_intent_mismatch"}},
		{"fail/authorization details of an unknown type", map[string]any{"authorization_details": []map[string]any{{"type": "crypto_transfer"}}},
			nil, want{false, 403, "grant_intent_mismatch"}},
		{"ok/one level of delegation", map[string]any{"act": map[string]any{"sub": "svc-b"}}, nil, want{true, 200, ""}},
		{"fail/delegation too deep", map[string]any{"act": map[string]any{"sub": "a", "act": map[string]any{"sub": "b", "act": map[string]any{"sub": "c"}}}},
			nil, want{false, 403, "delegation_too_deep"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			check(t, tb.decide(t, bearer(tb.mint(t, "ES256", tt.claims)), tt.request), tt.want)
		})
	}
}

func TestGuardrailRefreshTokenReuse(t *testing.T) {
	tb := newGuardrailTestbed(t, nil)
	es := tb.issuers["ES256"]
	refresh := func(sid string) string { return mintRefresh(t, es, sid) }
	tokenRequest := refreshGrant
	access := tb.mint(t, "ES256", map[string]any{"sid": "sess-9", "iat": time.Now().Add(-time.Minute).Unix()})
	check(t, tb.decide(t, bearer(access), nil), want{true, 200, ""})
	rt1, rt2 := refresh("sess-9"), refresh("sess-9")

	d := tb.decide(t, map[string]any{}, tokenRequest(rt1))
	if !d.Allow || d.Policy.Module != "token_endpoint" {
		t.Fatalf("first use of a refresh token: %+v", d)
	}
	if d := tb.decide(t, map[string]any{}, tokenRequest(rt2)); !d.Allow {
		t.Fatalf("the rotated refresh token: %+v", d.Reasons)
	}
	d = tb.decide(t, map[string]any{}, tokenRequest(rt1))
	if d.Allow || d.Status != 400 || len(d.codes()) == 0 || d.codes()[0] != "refresh_token_reused" {
		t.Fatalf("a rotated-out refresh token again: %+v", d)
	}
	check(t, tb.decide(t, bearer(access), nil), want{false, 401, "session_revoked"})
	if d := tb.decide(t, map[string]any{}, tokenRequest(refresh("sess-9"))); d.Allow {
		t.Error("a new refresh token of a family revoked for reuse was allowed")
	}
	t.Run("fail/a forged refresh token is invalid and revokes nothing", func(t *testing.T) {
		attacker, _ := devissuer.New(es.URL(), "ES256")
		forged, _ := attacker.Mint(map[string]any{"sub": "bob", "sid": "sess-bob"}, devissuer.WithHeader("typ", "refresh+jwt"), devissuer.WithHeader("kid", es.KID()))
		for range 2 {
			d := tb.decide(t, map[string]any{}, tokenRequest(forged))
			if d.Allow || d.codes()[0] != "refresh_token_invalid" {
				t.Fatalf("forged refresh token: %+v", d)
			}
		}
		bob := tb.mint(t, "ES256", map[string]any{"sub": "bob", "sid": "sess-bob", "iat": time.Now().Add(-time.Minute).Unix()})
		check(t, tb.decide(t, bearer(bob), nil), want{true, 200, ""})
	})
	t.Run("ok/other grant types pass the token endpoint", func(t *testing.T) {
		d := tb.decide(t, map[string]any{}, map[string]any{"method": "POST", "url": "https://as.example.com/token",
			"body": map[string]any{"grant_type": "authorization_code", "code": "abc"}})
		if !d.Allow {
			t.Errorf("authorization_code at the token endpoint: %+v", d.Reasons)
		}
	})
}

func TestShippedPolicyAllowsTheDevFlow(t *testing.T) {
	tb := newTestbed(t, nil)
	d := tb.decide(t, map[string]any{"authorization": "Bearer " + tb.mint(t, "ES256", map[string]any{"client_id": "dev-client"}), "user-agent": "curl/8"},
		with(nil, "remote_ip", "203.0.113.7"))
	check(t, d, want{true, 200, ""})
	if d.UpstreamHeaders["x-tokenguard-scopes"] != "accounts:read" {
		t.Errorf("upstream = %v", d.UpstreamHeaders)
	}
	raw, _ := json.Marshal(d)
	if strings.Contains(string(raw), "Bearer ") {
		t.Error("the decision echoes the token")
	}
}

func tokenHash(tok string) string { return token.HashToken(tok) }

// mintRefresh mints a refresh token (typ refresh+jwt) of iss for alice of
// client web-app in session sid, valid for an hour.
func mintRefresh(t testing.TB, iss *devissuer.Issuer, sid string) string {
	t.Helper()
	tok, err := iss.Mint(map[string]any{"aud": "https://as.example.com/token", "sub": "alice", "client_id": "web-app", "sid": sid,
		"exp": time.Now().Add(time.Hour).Unix()}, devissuer.WithHeader("typ", "refresh+jwt"))
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// refreshGrant is the token-endpoint request exchanging refresh token rt.
func refreshGrant(rt string) map[string]any {
	return map[string]any{"method": "POST", "url": "https://as.example.com/token",
		"body": "grant_type=refresh_token&refresh_token=" + rt + "&client_id=web-app"}
}
