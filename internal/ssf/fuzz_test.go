package ssf

import (
	"context"
	"crypto/elliptic"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
)

// FuzzVerifySET feeds arbitrary bytes to the verifier: it must never
// panic, and nothing but the untouched valid SETs may verify.
func FuzzVerifySET(f *testing.F) {
	es := newECSigner(f, "ec-1", elliptic.P256(), "ES256")
	rs := newRSASigner(f, "rsa-1", "RS256")
	dir := f.TempDir()
	jwksFile := filepath.Join(dir, "jwks.json")
	data, _ := json.Marshal(map[string]any{"keys": []any{es.jwk(f), rs.jwk(f)}})
	if err := os.WriteFile(jwksFile, data, 0o600); err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	v, err := NewVerifier(context.Background(), []config.Transmitter{
		{Issuer: txIssuer, JWKSFile: jwksFile, Audience: txAudience, TokenIssuers: []string{tokIssuerA}},
	}, VerifierOptions{Now: func() time.Time { return now }, Logger: testLogger(f)})
	if err != nil {
		f.Fatal(err)
	}

	claims := map[string]any{
		"iss": txIssuer, "aud": txAudience, "iat": now.Unix(), "jti": "fuzz-1",
		"sub_id": map[string]any{"format": "complex", "user": issSub(tokIssuerA, "u"), "session": map[string]any{"format": "opaque", "id": "s"}},
		"events": map[string]any{EventSessionRevoked: map[string]any{"event_timestamp": now.Unix() - 5}},
	}
	valid := map[string]bool{}
	for _, s := range []signer{es, rs} {
		set := s.setOf(f, claims)
		if _, err := v.Verify(context.Background(), []byte(set)); err != nil {
			f.Fatalf("seed %s does not verify: %v", s.alg, err)
		}
		valid[set] = true
		f.Add([]byte(set))
	}
	payload, _ := json.Marshal(claims)
	f.Add([]byte(enc([]byte(`{"alg":"none","typ":"secevent+jwt"}`)) + "." + enc(payload) + "."))
	f.Add([]byte(es.mint(f, `{"alg":"ES256","typ":"secevent+jwt","kid":"ec-1","alg":"none"}`, string(payload))))
	f.Add([]byte(es.mint(f, es.header(), `{"iss":"`+txIssuer+`","iss":"x"}`)))
	f.Add([]byte("a.b.c.d.e"))
	f.Add([]byte(`{"payload":"","signatures":[]}`))
	f.Add([]byte(".."))

	f.Fuzz(func(t *testing.T, raw []byte) {
		set, err := v.Verify(context.Background(), raw)
		if err != nil {
			if set != nil {
				t.Fatal("a refused SET was returned")
			}
			if _, ok := AsError(err); !ok {
				t.Fatalf("refusal %v is not an *Error", err)
			}
			return
		}
		if !valid[string(raw)] {
			t.Fatalf("input that is not a seed SET verified: %q", raw)
		}
		if _, rerr := planEvent(set, now); rerr != nil {
			t.Fatalf("seed SET cannot be planned: %v", rerr)
		}
	})
}

// FuzzSETClaims signs arbitrary claims with a trusted key, so that the
// claim, event and subject checks behind the signature are explored: no
// panic, and every accepted SET names a transmitter's audience and plans
// only revocations scoped to its token issuers.
func FuzzSETClaims(f *testing.F) {
	es := newECSigner(f, "ec-1", elliptic.P256(), "ES256")
	dir := f.TempDir()
	jwksFile := filepath.Join(dir, "jwks.json")
	data, _ := json.Marshal(map[string]any{"keys": []any{es.jwk(f)}})
	if err := os.WriteFile(jwksFile, data, 0o600); err != nil {
		f.Fatal(err)
	}
	now := time.Unix(1_700_000_000, 0)
	tokenIssuers := []string{tokIssuerA, tokIssuerB}
	v, err := NewVerifier(context.Background(), []config.Transmitter{
		{Issuer: txIssuer, JWKSFile: jwksFile, Audience: txAudience, TokenIssuers: tokenIssuers},
	}, VerifierOptions{Now: func() time.Time { return now }, Logger: testLogger(f)})
	if err != nil {
		f.Fatal(err)
	}
	header := es.header()
	for _, c := range []string{
		`{"iss":"` + txIssuer + `","aud":"` + txAudience + `","iat":1700000000,"jti":"a","sub_id":{"format":"iss_sub","iss":"` + tokIssuerA + `","sub":"u"},"events":{"` + EventAccountDisabled + `":{}}}`,
		`{"iss":"` + txIssuer + `","aud":["` + txAudience + `"],"iat":1.5e9,"jti":"b","events":{"` + EventSessionRevoked + `":{"subject":{"format":"complex","session":{"format":"opaque","id":"s"}},"event_timestamp":1699999999.25}}}`,
		`{"iss":"` + txIssuer + `","aud":"` + txAudience + `","iat":1700000000,"jti":"c","sub_id":{"format":"email","email":"a@b"},"events":{"` + EventDeviceComplianceChange + `":{"current_status":"not-compliant"}}}`,
	} {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, claims []byte) {
		if len(claims) > MaxSETSize/2 {
			return
		}
		set, err := v.Verify(context.Background(), []byte(es.mint(t, header, string(claims))))
		if err != nil {
			if _, ok := AsError(err); !ok {
				t.Fatalf("refusal %v is not an *Error", err)
			}
			return
		}
		if set.Issuer != txIssuer || set.JTI == "" || set.EventType == "" {
			t.Fatalf("accepted SET %+v", set)
		}
		p, rerr := planEvent(set, now)
		if rerr != nil {
			return
		}
		for _, tg := range p.targets {
			if !slices.Contains(tokenIssuers, tg.issuer) || tg.value == "" {
				t.Fatalf("planned revocation %+v outside the transmitter's token issuers", tg)
			}
			if p.cutoff.After(now) {
				t.Fatalf("cut-off %s is in the future", p.cutoff)
			}
		}
		if len(p.targets) == 0 && p.ignored == "" {
			t.Fatal("a plan with neither revocations nor a reason to ignore the event")
		}
	})
}
