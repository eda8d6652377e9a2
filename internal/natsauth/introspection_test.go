package natsauth

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/token"
)

type allowConnects struct{}

func (allowConnects) Decide(context.Context, *decision.Request) (*decision.Decision, error) {
	return &decision.Decision{ID: decision.NewID(), Allow: true, Status: 200}, nil
}

// TestUserJWTOfAnIntrospectedTokenEndsWithItsIntrospection: an opaque
// token's introspection answer is trusted for the issuer's cache_ttl only
// (the authorization server may deactivate the token, which no revocation
// in the PDP's store records, so no kick follows). The user JWT, which the
// server honours without asking again, must not outlive that answer.
func TestUserJWTOfAnIntrospectedTokenEndsWithItsIntrospection(t *testing.T) {
	now := time.Now()
	as := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"active":true,"sub":"alice","client_id":"c","aud":"https://api.example","exp":%d}`, now.Add(time.Hour).Unix())
	}))
	defer as.Close()
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	v, err := token.NewVerifier(context.Background(), []config.Issuer{{
		Issuer: "https://as.example", Audiences: []string{"https://api.example"},
		Introspection: &config.Introspection{Endpoint: as.URL, ClientID: "pdp", ClientSecretFile: secret,
			CacheTTL: time.Minute, Timeout: time.Second},
	}}, token.Options{})
	if err != nil {
		t.Fatal(err)
	}
	issuer, _ := nkeys.CreateAccount()
	svc, err := New(allowConnects{}, v, nil, Options{Issuer: issuer, Account: "APP", MaxLifetime: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	serverKey, _ := nkeys.CreateServer()
	data := signedRequest(t, serverKey, func(c *jwt.AuthorizationRequestClaims) {
		c.ConnectOptions = jwt.ConnectOptions{Token: "opaque-alice-token"}
	})
	resp, err := svc.Authorize(context.Background(), []byte(data), "")
	if err != nil {
		t.Fatal(err)
	}
	ac, err := jwt.DecodeAuthorizationResponseClaims(string(resp))
	if err != nil || ac.Error != "" {
		t.Fatalf("refused: %v %s", err, ac.Error)
	}
	uc, err := jwt.DecodeUserClaims(ac.Jwt)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		limit time.Time
	}{
		{"ok/the user JWT ends with the introspection's cache_ttl", now.Add(time.Minute + 2*time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if exp := time.Unix(uc.Expires, 0); exp.After(tc.limit) {
				t.Fatalf("user JWT expires %s, after %s", exp.Sub(now).Round(time.Second), tc.limit.Sub(now).Round(time.Second))
			}
		})
	}
}
