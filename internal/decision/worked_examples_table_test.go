package decision

import (
	"net/netip"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/dpop"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// workedJKT is the DPoP key thumbprint the DPoP examples' tokens are bound to.
const workedJKT = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"

// workedRefresh is a verified refresh token of alice's session sess-7 at
// client web-app, from family f.
func workedRefresh(reused bool, f store.Family) *refreshResult {
	claims := ast.NewObject(ast.Item(ast.StringTerm("sid"), ast.StringTerm("sess-7")))
	return &refreshResult{present: true, valid: true, reused: reused, family: f,
		tok: &token.Token{Issuer: "https://as.example.com", Subject: "alice", ClientID: "web-app", Claims: claims}}
}

// workedSightings are four sightings of the access token, from ip with
// user agent ua, 5 minutes apart, the last at 11:05:00Z.
func workedSightings(ip, ua string) []store.Sighting {
	var s []store.Sighting
	for i := range int64(4) {
		s = append(s, store.Sighting{At: time.Unix(1794999000+300*i, 0), IP: netip.MustParseAddr(ip), UserAgent: ua})
	}
	return s
}

// workedExamples are the worked examples of docs/guardrails/*.md, in page order.
var workedExamples = []workedExample{
	// Denied: three act levels, max_delegation_depth 2.
	{name: "delegation-too-deep", page: "delegation.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "svc-a", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c", "gty": "urn:ietf:params:oauth:grant-type:token-exchange", "act": {"sub": "svc-b", "act": {"sub": "svc-c", "act": {"sub": "svc-d"}}}}`,
	},
	// Allowed: act.act is history; only the outermost actor reaches the upstream.
	{name: "delegation-outer-actor", page: "delegation.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "svc-a", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c", "gty": "urn:ietf:params:oauth:grant-type:token-exchange", "act": {"sub": "svc-b", "act": {"sub": "admin"}}}`,
	},
	// Denied: the bearer token was last seen from 198.51.100.23 (another /24).
	{name: "fingerprint-other-network", page: "fingerprint.md",
		body:      `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims:    `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c"}`,
		sightings: workedSightings("198.51.100.23", "curl/8.5.0"),
	},
	// Denied: same network, another User-Agent.
	{name: "fingerprint-other-user-agent", page: "fingerprint.md",
		body:      `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims:    `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c"}`,
		sightings: workedSightings("203.0.113.7", "Mozilla/5.0"),
	},
	// Denied: authorization_details of a type no route knows.
	{name: "intent-unknown-type", page: "grant-intent.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c", "authorization_details": [{"type": "payment_initiation", "actions": ["initiate"], "instructedAmount": {"currency": "EUR", "amount": "123.50"}}]}`,
	},
	// Denied: account_information details that do not allow read.
	{name: "intent-action-missing", page: "grant-intent.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c", "authorization_details": [{"type": "account_information", "actions": ["list"], "locations": ["https://api.example.com"]}]}`,
	},
	// Allowed: details that cover the route.
	{name: "intent-details-cover", page: "grant-intent.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c", "authorization_details": [{"type": "account_information", "actions": ["read", "list"], "locations": ["https://api.example.com"]}]}`,
	},
	// Denied: a 2-hour user token (default max_lifetime 1h).
	{name: "lifetime-exceeded", page: "lifetime.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "iat": 1794999880, "exp": 1795007080, "jti": "4f1c"}`,
	},
	// Allowed with a warning: client payments-job has lifetime in monitor mode (its 1h client-credentials token exceeds the 15m grant-type limit). Its other guardrails (DPoP, network) still enforce; note the route's grant_types do not list client_credentials in the shipped data, so this uses a data copy whose route admits it.
	{name: "lifetime-monitored", page: "lifetime.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "DPoP eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0", "dpop": "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7…"}, "remote_ip": "10.20.4.9"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "payments-job", "client_id": "payments-job", "scope": "accounts:read", "iat": 1794999940, "exp": 1795003540, "jti": "4f1c", "gty": "client_credentials"}`,
		data:   `{"data.pdp.routes[0].grant_types": ["authorization_code", "refresh_token", "device_code", "token_exchange", "client_credentials"]}`,
		bound:  token.Confirmation{JKT: workedJKT},
		proof:  proofResult{present: true, valid: true, jkt: workedJKT},
		show:   []string{"token.scheme", "token.bound", "dpop"},
	},
	// Allowed with warnings: fingerprint and scope in monitor mode.
	{name: "modes-warnings", page: "modes.md",
		body:      `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims:    `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c", "roles": ["guest"]}`,
		data:      `{"data.pdp.modes": {"dpop": "enforce", "fingerprint": "monitor", "scope": "monitor"}}`,
		sightings: workedSightings("198.51.100.23", "curl/8.5.0"),
	},
	// Denied: revocation cannot be monitored, and the client's own setting puts fingerprint back to enforce.
	{name: "modes-revocation-enforced", page: "modes.md",
		body:        `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims:      `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c", "roles": ["guest"]}`,
		data:        `{"data.pdp.modes": {"dpop": "enforce", "fingerprint": "monitor", "scope": "monitor"}, "data.pdp.clients[\"web-app\"]": {"modes": {"fingerprint": "enforce"}}}`,
		sightings:   workedSightings("198.51.100.23", "curl/8.5.0"),
		revocations: []store.Revocation{{Kind: store.KindSubject, Issuer: "https://as.example.com", Value: "alice", Reason: "password changed", NotBefore: time.Unix(1794999900, 0)}},
	},
	// Denied: payments-job (allowed_cidrs 10.20.0.0/16) used from 203.0.113.7.
	{name: "network-outside-cidrs", page: "network.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "DPoP eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0", "dpop": "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7…"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "payments-job", "client_id": "payments-job", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c", "gty": "client_credentials"}`,
		data:   `{"data.pdp.routes[0].grant_types": ["authorization_code", "refresh_token", "device_code", "token_exchange", "client_credentials"]}`,
		bound:  token.Confirmation{JKT: workedJKT},
		proof:  proofResult{present: true, valid: true, jkt: workedJKT},
		show:   []string{"token.scheme", "token.bound", "dpop"},
	},
	// Denied and revoked: a rotated-out refresh token presented again.
	{name: "refresh-reused", page: "refresh.md",
		body:    `{"request": {"method": "POST", "url": "https://as.example.com/token", "headers": {"content-type": "application/x-www-form-urlencoded", "authorization": "Basic d2ViLWFwcDpzM2NyZXQ="}, "remote_ip": "203.0.113.7", "body": {"grant_type": ["refresh_token"], "refresh_token": ["eyJhbGciOiJFUzI1NiIs…"]}}, "context": {}}`,
		refresh: workedRefresh(true, store.Family{ID: "Fh2", CreatedAt: time.Unix(1794740800, 0), Rotations: 5}),
		show:    []string{"token_endpoint"},
	},
	// Denied: the refresh-token family is 31 days old (refresh_max_age 720h).
	{name: "refresh-family-too-old", page: "refresh.md",
		body:    `{"request": {"method": "POST", "url": "https://as.example.com/token", "headers": {"content-type": "application/x-www-form-urlencoded", "authorization": "Basic d2ViLWFwcDpzM2NyZXQ="}, "remote_ip": "203.0.113.7", "body": {"grant_type": ["refresh_token"], "refresh_token": ["eyJhbGciOiJFUzI1NiIs…"]}}, "context": {}}`,
		refresh: workedRefresh(false, store.Family{ID: "Fh2", CreatedAt: time.Unix(1792321600, 0), Rotations: 90}),
		show:    []string{"token_endpoint"},
	},
	// Denied: a refresh token that does not verify.
	{name: "refresh-invalid", page: "refresh.md",
		body:    `{"request": {"method": "POST", "url": "https://as.example.com/token", "headers": {"content-type": "application/x-www-form-urlencoded", "authorization": "Basic d2ViLWFwcDpzM2NyZXQ="}, "remote_ip": "203.0.113.7", "body": {"grant_type": ["refresh_token"], "refresh_token": ["eyJhbGciOiJFUzI1NiIs…"]}}, "context": {}}`,
		refresh: &refreshResult{present: true, err: &token.Error{Code: token.CodeSignatureInvalid, Message: "no key of the issuer verifies the refresh token"}},
		show:    []string{"token_endpoint"},
	},
	// Allowed: other grant types are the authorization server's business.
	{name: "refresh-other-grant", page: "refresh.md",
		body: `{"request": {"method": "POST", "url": "https://as.example.com/token", "headers": {"content-type": "application/x-www-form-urlencoded", "authorization": "Basic d2ViLWFwcDpzM2NyZXQ="}, "remote_ip": "203.0.113.7", "body": {"grant_type": ["authorization_code"], "code": ["SplxlOBeZQQYbYS6WxSbIA"], "redirect_uri": ["https://app.example.com/cb"]}}, "context": {}}`,
		show: []string{"token_endpoint"},
	},
	// Denied: the user changed their password after the token was issued (pdp.revocation answers a subject cut-off).
	{name: "revocation-subject-cutoff", page: "revocation.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c"}`,
		revocations: []store.Revocation{{Kind: store.KindSubject, Issuer: "https://as.example.com", Value: "alice", Reason: "password changed",
			NotBefore: time.Unix(1794999900, 0)}},
	},
	// Denied: no route for DELETE (unknown_routes deny).
	{name: "route-unknown", page: "route.md",
		body:   `{"request": {"method": "DELETE", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c"}`,
	},
	// Denied: a token for another API (RFC 8707).
	{name: "route-audience-mismatch", page: "route.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://payments.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c"}`,
	},
	// Denied: a client-credentials token on a route open to user grants only.
	{name: "route-grant-type", page: "route.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "billing", "client_id": "billing", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c", "gty": "client_credentials"}`,
	},
	// Denied: the token was never granted accounts:read.
	{name: "scope-insufficient", page: "scope.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "openid profile", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c"}`,
	},
	// Denied: granted, but the caller's role (guest) may not use it in prod.
	{name: "scope-role-restricted", page: "scope.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c", "roles": ["guest"]}`,
	},
	// Allowed: an admin's accounts:write is frozen in prod, so only accounts:read goes upstream.
	{name: "scope-frozen", page: "scope.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read accounts:write", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c", "roles": ["admin"]}`,
	},
	// Denied: a DPoP-bound token presented as Bearer (D11).
	{name: "sender-dpop-as-bearer", page: "sender.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c"}`,
		bound:  token.Confirmation{JKT: workedJKT},
		show:   []string{"token.scheme", "token.bound", "dpop"},
	},
	// Denied: the proof lacks the server nonce (D12); the client retries with the nonce in dpop-nonce.
	{name: "sender-nonce-required", page: "sender.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "DPoP eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0", "dpop": "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7…"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c"}`,
		bound:  token.Confirmation{JKT: workedJKT},
		proof: proofResult{present: true, nonce: "eyJ7S_zG.eyJH0-Z.HX4w-7v",
			err: &dpop.Error{Code: dpop.CodeNonceRequired, Message: "the DPoP proof must carry the server nonce"}},
		show: []string{"token.scheme", "token.bound", "dpop"},
	},
	// Denied: a valid proof by another key (D10).
	{name: "sender-other-key", page: "sender.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "DPoP eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0", "dpop": "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7…"}, "remote_ip": "203.0.113.7"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c"}`,
		bound:  token.Confirmation{JKT: workedJKT},
		proof:  proofResult{present: true, valid: true, jkt: "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"},
		show:   []string{"token.scheme", "token.bound", "dpop"},
	},
	// Denied: client payments-job must use DPoP but sent a plain bearer token (route admitting client_credentials as above).
	{name: "sender-constraint-required", page: "sender.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "10.20.4.9"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "payments-job", "client_id": "payments-job", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c", "gty": "client_credentials"}`,
		data:   `{"data.pdp.routes[0].grant_types": ["authorization_code", "refresh_token", "device_code", "token_exchange", "client_credentials"]}`,
	},
	// Denied: an mTLS-bound token with another client certificate.
	{name: "sender-mtls-mismatch", page: "sender.md",
		body:   `{"request": {"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": {"authorization": "Bearer eyJhbGciOiJFUzI1NiIs…", "user-agent": "curl/8.5.0"}, "remote_ip": "203.0.113.7", "tls_client_cert": "-----BEGIN CERTIFICATE-----…"}, "context": {}}`,
		claims: `{"iss": "https://as.example.com", "aud": "https://api.example.com", "sub": "alice", "client_id": "web-app", "scope": "accounts:read", "iat": 1794999880, "exp": 1795000780, "jti": "4f1c"}`,
		bound:  token.Confirmation{X5TS256: "A4DtL2JmUMhAsvJj5tKyn64SqzmuXbMrJa0n761y5v0"},
		show:   []string{"token.bound", "request.client_cert"},
	},
}
