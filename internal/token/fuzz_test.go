package token

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/devissuer"
)

// FuzzVerify feeds arbitrary strings to a verifier with real keys. Verify
// must never panic, must always fail with an *Error carrying a known code,
// and must accept nothing but the tokens the issuer really signed.
func FuzzVerify(f *testing.F) {
	iss, err := devissuer.New(issA, "ES256")
	if err != nil {
		f.Fatal(err)
	}
	valid, err := iss.Mint(claims(issA, nil))
	if err != nil {
		f.Fatal(err)
	}
	withoutKid, err := iss.Mint(claims(issA, nil), devissuer.WithHeader("kid", nil))
	if err != nil {
		f.Fatal(err)
	}
	genuine := map[string]bool{valid: true, withoutKid: true}

	v, err := NewVerifier(context.Background(), []config.Issuer{{
		Issuer: issA, JWKSFile: writeFile(f, "jwks.json", iss.JWKS()), Audiences: []string{apiAud},
		Algorithms: []string{"ES256", "RS256", "EdDSA"},
	}}, Options{Now: func() time.Time { return testNow }, Skew: 30 * time.Second, CacheSize: 64})
	if err != nil {
		f.Fatal(err)
	}
	codes := map[string]bool{
		CodeTokenMissing: true, CodeTokenMalformed: true, CodeSignatureInvalid: true, CodeAlgNotAllowed: true,
		CodeTypeInvalid: true, CodeIssuerUntrusted: true, CodeAudienceMismatch: true, CodeExpired: true,
		CodeNotYetValid: true, CodeClaimsMissing: true, CodeInactive: true, CodeIntrospectionFailed: true,
	}

	for _, s := range []string{
		valid, withoutKid, "", ".", "..", "a.b.c", "a.b.c.d.e", strings.Repeat(".", 100),
		"eyJhbGciOiJub25lIn0.eyJpc3MiOiJodHRwczovL2FzLmV4YW1wbGUifQ.",
		valid[:len(valid)-1], valid + "A", strings.Replace(valid, ".", "..", 1),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		tok, err := v.Verify(context.Background(), raw)
		if err == nil {
			if tok == nil {
				t.Fatal("nil token without error")
			}
			if !genuine[raw] {
				t.Fatalf("accepted a token the issuer never signed: %q", raw)
			}
			return
		}
		if tok != nil {
			t.Fatal("token returned with an error")
		}
		var e *Error
		if !errors.As(err, &e) || !codes[e.Code] || e.Message == "" {
			t.Fatalf("error %v is not an *Error with a known code", err)
		}
		if len(raw) > 16 && strings.Contains(err.Error(), raw) {
			t.Fatalf("error repeats the input: %v", err)
		}
	})
}
