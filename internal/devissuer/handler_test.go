package devissuer

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestTokenHandler(t *testing.T) {
	iss := newIssuer(t, "ES256")
	h := iss.TokenHandler(map[string]any{"aud": "https://api.example", "scope": "default"})

	tests := []struct {
		name       string
		method     string
		query      string
		form       string
		wantStatus int
		wantClaims map[string]any
		wantTTL    int64
	}{
		{name: "ok/defaults", method: http.MethodGet, wantStatus: 200,
			wantClaims: map[string]any{"aud": "https://api.example", "scope": "default"}, wantTTL: 300},
		{name: "ok/query params", method: http.MethodGet, query: "sub=alice&client_id=c1&scope=read+write&gty=client-credentials&ttl=10m", wantStatus: 200,
			wantClaims: map[string]any{"sub": "alice", "client_id": "c1", "scope": "read write", "gty": "client-credentials"}, wantTTL: 600},
		{name: "ok/form post", method: http.MethodPost, form: "sub=bob&aud=a1&aud=a2", wantStatus: 200,
			wantClaims: map[string]any{"sub": "bob", "aud": []any{"a1", "a2"}}, wantTTL: 300},
		{name: "ok/ttl capped at 24h", method: http.MethodGet, query: "ttl=100h", wantStatus: 200, wantTTL: 86400},
		{name: "fail/bad ttl", method: http.MethodGet, query: "ttl=forever", wantStatus: 400},
		{name: "fail/negative ttl", method: http.MethodGet, query: "ttl=-5m", wantStatus: 400},
		{name: "fail/unknown parameter", method: http.MethodGet, query: "scopes=read", wantStatus: 400},
		{name: "fail/repeated sub", method: http.MethodGet, query: "sub=a&sub=b", wantStatus: 400},
		{name: "fail/empty value", method: http.MethodGet, query: "sub=", wantStatus: 400},
		{name: "fail/control character", method: http.MethodGet, query: "sub=a%0Ab", wantStatus: 400},
		{name: "fail/too long", method: http.MethodGet, query: "sub=" + strings.Repeat("x", 2000), wantStatus: 400},
		{name: "fail/method", method: http.MethodDelete, wantStatus: 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := "/dev/token"
			if tt.query != "" {
				target += "?" + tt.query
			}
			var body io.Reader
			if tt.form != "" {
				body = strings.NewReader(tt.form)
			}
			req := httptest.NewRequest(tt.method, target, body)
			if tt.form != "" {
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("status = %d, want %d; body %s", rec.Code, tt.wantStatus, rec.Body)
			}
			if tt.wantStatus != 200 {
				if ct := rec.Header().Get("Content-Type"); ct != "application/problem+json" {
					t.Fatalf("content type = %q", ct)
				}
				var p problem
				if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil || p.Status != tt.wantStatus || p.Title == "" {
					t.Fatalf("problem = %+v (%v)", p, err)
				}
				return
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Fatalf("content type = %q", ct)
			}
			var resp tokenResponse
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatal(err)
			}
			if resp.TokenType != "Bearer" || resp.ExpiresIn != tt.wantTTL {
				t.Fatalf("response = %+v", resp)
			}
			_, claims := verifyWithJWKS(t, iss, resp.AccessToken)
			for k, want := range tt.wantClaims {
				got, _ := json.Marshal(claims[k])
				w, _ := json.Marshal(want)
				if string(got) != string(w) {
					t.Errorf("claim %s = %s, want %s", k, got, w)
				}
			}
			if exp, iat := claims["exp"].(float64), claims["iat"].(float64); int64(exp-iat) != tt.wantTTL {
				t.Errorf("exp - iat = %v, want %d", exp-iat, tt.wantTTL)
			}
		})
	}
}

func TestTokenHandlerDoesNotShareDefaults(t *testing.T) {
	iss := newIssuer(t, "ES256")
	defaults := map[string]any{"aud": "a"}
	h := iss.TokenHandler(defaults)
	defaults["aud"] = "changed"
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/?"+url.Values{"sub": {"x"}}.Encode(), nil))
	var resp tokenResponse
	_ = json.Unmarshal(rec.Body.Bytes(), &resp)
	if _, claims := verifyWithJWKS(t, iss, resp.AccessToken); claims["aud"] != "a" {
		t.Fatalf("aud = %v", claims["aud"])
	}
}
