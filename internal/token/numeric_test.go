package token

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/jose"
)

// rawClaims is a valid claim set of iss as JSON, with the named members
// replaced by raw JSON text.
func rawClaims(t testing.TB, iss string, raw map[string]string) string {
	t.Helper()
	c := claims(iss, nil)
	for k := range raw {
		delete(c, k)
	}
	s := jsonString(t, c)
	for k, v := range raw {
		s = strings.TrimSuffix(s, "}") + `,"` + k + `":` + v + "}"
	}
	return s
}

// outOfRange are NumericDates no part of the decision point can hold, each
// for every time claim: a signed token, a refresh token or an
// introspection response carrying one is malformed.
var outOfRange = []struct{ name, value string }{
	{"negative", "-1"},
	{"negative with a fraction", "-0.5"},
	{"year one", "-62135596800"},
	{"past 2262", "9223372037"},
	{"past 2262 by a fraction", "9223372036.5"},
	{"year 9999", "253402300799"},
	{"beyond int64", "18446744073709551616"},
	{"a huge exponent", "1e400"},
	{"the largest float64", "1.7976931348623157e308"},
}

func TestNumericClaims(t *testing.T) {
	f := newFixture(t)
	header := `{"alg":"ES256","typ":"at+jwt","kid":"` + f.a.KID() + `"}`
	refreshHeader := `{"alg":"ES256","typ":"refresh+jwt","kid":"` + f.a.KID() + `"}`
	introspection := func(t *testing.T, body string) (*Token, error) {
		srv := newIntroServer(t)
		srv.set(jsonAnswer(200, body))
		v := newIntroVerifier(t, srv.URL, &clock{t: testNow}, time.Minute)
		return v.Verify(context.Background(), opaqueToken)
	}
	sources := []struct {
		name   string
		verify func(t *testing.T, claim, value string) (string, *Token, error)
		code   string
	}{
		{"access token", func(t *testing.T, claim, value string) (string, *Token, error) {
			tok := craft(t, f.a.PrivateKey(), "ES256", header, rawClaims(t, issA, map[string]string{claim: value}))
			got, err := f.v.Verify(context.Background(), tok)
			return tok, got, err
		}, CodeTokenMalformed},
		{"refresh token", func(t *testing.T, claim, value string) (string, *Token, error) {
			tok := craft(t, f.a.PrivateKey(), "ES256", refreshHeader, rawClaims(t, issA, map[string]string{claim: value}))
			got, err := f.v.VerifyRefresh(context.Background(), tok)
			return tok, got, err
		}, CodeTokenMalformed},
		{"introspection response", func(t *testing.T, claim, value string) (string, *Token, error) {
			got, err := introspection(t, `{"active":true,"`+claim+`":`+value+`}`)
			return opaqueToken, got, err
		}, CodeIntrospectionFailed},
	}
	for _, src := range sources {
		for _, claim := range []string{"exp", "iat", "nbf"} {
			for _, v := range outOfRange {
				t.Run("fail/"+src.name+" "+claim+" "+v.name, func(t *testing.T) {
					tok, got, err := src.verify(t, claim, v.value)
					wantCode(t, tok, got, err, src.code)
				})
			}
		}
		t.Run("ok/"+src.name+" iat with a fraction and exp at 2262", func(t *testing.T) {
			_, got, err := src.verify(t, "iat", "1767225000.25")
			if err != nil {
				t.Fatal(err)
			}
			if got.IssuedAt.UnixNano() != 1767225000250000000 {
				t.Errorf("iat = %s", got.IssuedAt)
			}
			_, got, err = src.verify(t, "exp", "9223372036")
			if err != nil {
				t.Fatal(err)
			}
			if got.ExpiresAt.UnixNano() != 9223372036e9 {
				t.Errorf("exp = %s", got.ExpiresAt)
			}
		})
	}
}

// FuzzNumericClaims signs tokens whose exp, iat and nbf are arbitrary JSON
// numbers. Verify never panics; a token it accepts carries times from 1970
// to 2262 that convert to Unix nanoseconds and back; a refused one is
// refused with a known code, and an out-of-range date never as anything
// but token_malformed.
func FuzzNumericClaims(f *testing.F) {
	iss, err := devissuer.New(issA, "ES256")
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewVerifier(context.Background(), []config.Issuer{{
		Issuer: issA, JWKSFile: writeFile(f, "jwks.json", iss.JWKS()), Audiences: []string{apiAud}, Algorithms: []string{"ES256"},
	}}, Options{Now: func() time.Time { return testNow }, Skew: 30 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	header := []byte(`{"alg":"ES256","typ":"at+jwt","kid":"` + iss.KID() + `"}`)
	now := itoa(testNow.Unix())
	f.Add("exp", itoa(testNow.Add(time.Hour).Unix()))
	f.Add("iat", now+".5")
	f.Add("nbf", "0")
	for _, c := range []string{"exp", "iat", "nbf"} {
		for _, v := range outOfRange {
			f.Add(c, v.value)
		}
	}
	f.Add("iat", "-0")
	f.Add("exp", "1e-400")
	f.Add("exp", "9223372036.000000001")
	f.Add("iat", "0.0000000001e10")
	f.Fuzz(func(t *testing.T, claim, value string) {
		switch claim {
		case "exp", "iat", "nbf":
		default:
			return
		}
		payload := rawClaims(t, issA, map[string]string{claim: value})
		tok, err := devissuer.SignCompact(iss.PrivateKey(), "ES256", header, []byte(payload))
		if err != nil {
			t.Fatal(err)
		}
		got, err := v.Verify(context.Background(), tok)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Message == "" {
				t.Fatalf("error %v is not an *Error", err)
			}
			switch e.Code {
			case CodeTokenMalformed, CodeExpired, CodeNotYetValid:
			default:
				t.Fatalf("%s %q: code %s", claim, value, e.Code)
			}
			return
		}
		for _, d := range []time.Time{got.ExpiresAt, got.IssuedAt, got.NotBefore} {
			if d.IsZero() {
				continue
			}
			if d.Unix() < 0 || d.Unix() > jose.MaxNumericDate || !time.Unix(0, d.UnixNano()).Equal(d) {
				t.Fatalf("%s %q: accepted a date the store cannot hold: %s", claim, value, d)
			}
		}
	})
}
