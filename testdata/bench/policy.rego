# The stock-OPA side of the load benchmark (cmd/pdpbench): what OPA alone
# can check on a JWT access token, with the same issuer key, audience and
# scope the tokenguard side is configured with. Input:
#
#   {"token": "<compact JWS>", "method": "GET", "path": "/v1/accounts/42"}
#
# queried at POST /v1/data/bench/authz/allow.
#
# data.bench.settings (data.json; the benchmark writes the run's JWKS into it):
# issuer, audience, jwks (a JWKS document as a string), scope,
# max_lifetime (seconds), method and path (a glob with "/" as separator).
package bench.authz

default allow := false

allow if {
	input.method == data.bench.settings.method
	glob.match(data.bench.settings.path, ["/"], input.path)
	[valid, header, claims] := io.jwt.decode_verify(input.token, {
		"cert": data.bench.settings.jwks,
		"alg": "ES256",
		"iss": data.bench.settings.issuer,
		"aud": data.bench.settings.audience,
	})
	valid
	header.typ == "at+jwt"
	claims.exp - claims.iat <= data.bench.settings.max_lifetime
	data.bench.settings.scope in split(claims.scope, " ")
}
