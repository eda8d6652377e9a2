package token

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
)

// FuzzIntrospectionResponse serves arbitrary bodies as RFC 7662 responses,
// to the access-token and the refresh-token verifier. Neither may panic;
// each fails with an *Error of a known code; and only a response whose
// "active" is the JSON boolean true ever verifies.
func FuzzIntrospectionResponse(f *testing.F) {
	var body atomic.Pointer[[]byte]
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(*body.Load())
	}))
	f.Cleanup(srv.Close)
	v, err := NewVerifier(context.Background(), []config.Issuer{{
		Issuer:    issIntro,
		Audiences: []string{apiAud},
		Introspection: &config.Introspection{
			Endpoint: srv.URL, ClientID: introClient, ClientSecretFile: writeFile(f, "secret", []byte(introSecret+"\n")),
			CacheTTL: time.Minute, Timeout: 2 * time.Second,
		},
	}}, Options{Now: func() time.Time { return testNow }, Skew: 30 * time.Second})
	if err != nil {
		f.Fatal(err)
	}
	exp, iat := strconv.FormatInt(testNow.Add(time.Hour).Unix(), 10), strconv.FormatInt(testNow.Unix(), 10)
	for _, s := range []string{
		`{"active":true,"sub":"u","client_id":"c","aud":"` + apiAud + `","exp":` + exp + `,"iat":` + iat + `}`,
		`{"active":true,"token_type":"refresh_token","sub":"u","exp":` + exp + `}`,
		`{"active":false}`,
		`{"active":"true"}`,
		`{"active":1}`,
		`{"active":true,"active":false}`,
		`{"active":true,"iss":"https://other.example"}`,
		`{"active":true,"exp":"` + exp + `"}`,
		`{"active":true,"exp":1e400}`,
		`{"active":true,"exp":99999999999999999999}`,
		`{"active":true,"aud":[]}`,
		`{"active":true,"aud":[1]}`,
		`{"active":true,"scope":["a"]}`,
		`{"active":true,"cnf":{"jkt":1}}`,
		`[true]`, `null`, `"active"`, ``, `{`, `{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}`,
	} {
		f.Add([]byte(s))
	}
	codes := map[string]bool{
		CodeTokenMalformed: true, CodeTypeInvalid: true, CodeIssuerUntrusted: true, CodeAudienceMismatch: true,
		CodeExpired: true, CodeNotYetValid: true, CodeClaimsMissing: true, CodeInactive: true, CodeIntrospectionFailed: true,
	}
	var n atomic.Int64
	f.Fuzz(func(t *testing.T, data []byte) {
		body.Store(&data)
		for _, verify := range []func(context.Context, string) (*Token, error){v.Verify, v.VerifyRefresh} {
			// A new token each time: nothing is answered from the cache.
			raw := "opaque-fuzz-" + strconv.FormatInt(n.Add(1), 10)
			tok, err := verify(context.Background(), raw)
			if err != nil {
				var e *Error
				if tok != nil || !errors.As(err, &e) || !codes[e.Code] {
					t.Fatalf("verify = %v, %v; want an *Error with a known code", tok, err)
				}
				continue
			}
			// Members as raw JSON: another member's number past float64's
			// range ({"active":true,"x":1e700}) is no reason to refuse.
			var m map[string]json.RawMessage
			if json.Unmarshal(data, &m) != nil || string(m["active"]) != "true" {
				t.Fatalf("verified a response whose active is not true: %q", data)
			}
			if tok.Issuer != issIntro || tok.Source != SourceIntrospection {
				t.Fatalf("token %+v", tok)
			}
		}
	})
}
