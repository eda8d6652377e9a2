# Tests of the stock-OPA benchmark policy: tokens are signed here with a
# fixed test key and verified against its public JWKS.
package bench.authz_test

import data.bench.authz

private_jwk := {
	"kty": "EC", "crv": "P-256", "kid": "bench-test",
	"x": "AuLLo7Qu4Jcs7NIy8NNwfy7mwckfraOVWOpeI0x1ld4",
	"y": "cVbGWLaQ7mKXREVE1blcttH_gmGSUluQi_1LyunYXME",
	"d": "IBEWNNPKCXoXWCnfE6Qx8MGSHPMVZT5YfgxhLkMRD8c",
}

jwks := json.marshal({"keys": [object.remove(private_jwk, ["d"])]})

settings := {
	"issuer": "https://as.example.com",
	"audience": "https://api.example.com",
	"jwks": jwks,
	"scope": "accounts:read",
	"max_lifetime": 3600,
	"method": "GET",
	"path": "/v1/accounts/*",
}

now := floor(time.now_ns() / 1000000000)

claims := {
	"iss": "https://as.example.com",
	"aud": "https://api.example.com",
	"sub": "alice",
	"scope": "openid accounts:read",
	"iat": now,
	"exp": now + 300,
}

sign(c) := io.jwt.encode_sign({"alg": "ES256", "typ": "at+jwt", "kid": "bench-test"}, c, private_jwk)

request(token) := {"token": token, "method": "GET", "path": "/v1/accounts/42"}

test_allows_a_valid_token if {
	authz.allow with input as request(sign(claims)) with data.bench.settings as settings
}

test_denies_another_audience if {
	not authz.allow with input as request(sign(object.union(claims, {"aud": "https://other.example.com"})))
		with data.bench.settings as settings
}

test_denies_another_issuer if {
	not authz.allow with input as request(sign(object.union(claims, {"iss": "https://evil.example.com"})))
		with data.bench.settings as settings
}

test_denies_an_expired_token if {
	not authz.allow with input as request(sign(object.union(claims, {"iat": now - 600, "exp": now - 300})))
		with data.bench.settings as settings
}

test_denies_a_token_living_too_long if {
	not authz.allow with input as request(sign(object.union(claims, {"exp": now + 7200})))
		with data.bench.settings as settings
}

test_denies_a_token_without_the_scope if {
	not authz.allow with input as request(sign(object.union(claims, {"scope": "openid"})))
		with data.bench.settings as settings
}

test_denies_a_token_of_another_key if {
	other := object.union(private_jwk, {"d": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"})
	token := io.jwt.encode_sign({"alg": "ES256", "typ": "at+jwt", "kid": "bench-test"}, claims, other)
	not authz.allow with input as request(token) with data.bench.settings as settings
}

test_denies_an_id_token if {
	token := io.jwt.encode_sign({"alg": "ES256", "typ": "JWT", "kid": "bench-test"}, claims, private_jwk)
	not authz.allow with input as request(token) with data.bench.settings as settings
}

test_denies_another_route if {
	not authz.allow with input as object.union(request(sign(claims)), {"method": "DELETE"})
		with data.bench.settings as settings
	not authz.allow with input as object.union(request(sign(claims)), {"path": "/v1/accounts/42/keys"})
		with data.bench.settings as settings
}

test_denies_without_a_token if {
	not authz.allow with input as {"method": "GET", "path": "/v1/accounts/42"} with data.bench.settings as settings
}
