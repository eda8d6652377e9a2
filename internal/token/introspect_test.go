package token

import (
	"context"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
)

const (
	issIntro     = "https://introspect.example"
	opaqueToken  = "2YotnFZFEjr1zCsicMWpAA"
	introClient  = "pdp:client/1"
	introSecret  = "s3c:r%t+"
	introTimeout = 300 * time.Millisecond
)

// introServer is an RFC 7662 endpoint whose answer the test sets.
type introServer struct {
	*httptest.Server
	calls atomic.Int64
	mu    sync.Mutex
	// answer writes the response; nil means active with default claims.
	answer func(w http.ResponseWriter, r *http.Request)
	// lastErr records a protocol violation by the client.
	lastErr string
}

func newIntroServer(t *testing.T) *introServer {
	t.Helper()
	s := &introServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		s.check(r)
		s.mu.Lock()
		answer := s.answer
		s.mu.Unlock()
		if answer == nil {
			answer = jsonAnswer(200, `{"active":true,"sub":"user-1","client_id":"client-1","aud":"`+apiAud+`","scope":"read"}`)
		}
		answer(w, r)
	}))
	t.Cleanup(s.Close)
	return s
}

// check records a violation of the request rules (method, content type,
// Accept, Basic auth with form-encoded credentials, form body).
func (s *introServer) check(r *http.Request) {
	fail := func(msg string) {
		s.mu.Lock()
		s.lastErr = msg
		s.mu.Unlock()
	}
	if r.Method != http.MethodPost {
		fail("method " + r.Method)
	}
	if r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		fail("content type " + r.Header.Get("Content-Type"))
	}
	if r.Header.Get("Accept") != "application/json" {
		fail("accept " + r.Header.Get("Accept"))
	}
	auth := r.Header.Get("Authorization")
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(auth, "Basic "))
	if want := url.QueryEscape(introClient) + ":" + url.QueryEscape(introSecret); string(raw) != want {
		fail("basic credentials " + string(raw))
	}
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token_type_hint") != "access_token" || r.PostForm.Get("token") == "" {
		fail("form " + r.PostForm.Encode())
	}
}

func (s *introServer) set(answer func(w http.ResponseWriter, r *http.Request)) {
	s.mu.Lock()
	s.answer = answer
	s.mu.Unlock()
}

func jsonAnswer(status int, body string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

func newIntroVerifier(t *testing.T, endpoint string, clk *clock, ttl time.Duration) *Verifier {
	t.Helper()
	v, err := NewVerifier(context.Background(), []config.Issuer{{
		Issuer:    issIntro,
		Audiences: []string{apiAud},
		Introspection: &config.Introspection{
			Endpoint: endpoint, ClientID: introClient, ClientSecretFile: writeFile(t, "secret", []byte(introSecret+"\n")),
			CacheTTL: ttl, Timeout: introTimeout,
		},
	}}, Options{Now: clk.Now, Skew: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestIntrospection(t *testing.T) {
	exp := testNow.Add(time.Hour).Unix()
	tests := []struct {
		name   string
		answer func(w http.ResponseWriter, r *http.Request)
		token  string
		code   string
	}{
		{"ok/active", nil, opaqueToken, ""},
		{"ok/opaque token with dots", nil, "abc.def", ""},
		{"ok/active with matching iss, exp and aud array", jsonAnswer(200,
			`{"active":true,"iss":"`+issIntro+`","exp":`+itoa(exp)+`,"aud":["x","`+apiAud+`"]}`), opaqueToken, ""},
		{"fail/active false", jsonAnswer(200, `{"active":false}`), opaqueToken, CodeInactive},
		{"fail/active string true", jsonAnswer(200, `{"active":"true"}`), opaqueToken, CodeIntrospectionFailed},
		{"fail/active number", jsonAnswer(200, `{"active":1}`), opaqueToken, CodeIntrospectionFailed},
		{"fail/active missing", jsonAnswer(200, `{"sub":"user-1"}`), opaqueToken, CodeIntrospectionFailed},
		{"fail/active duplicated", jsonAnswer(200, `{"active":false,"active":true}`), opaqueToken, CodeIntrospectionFailed},
		{"fail/not an object", jsonAnswer(200, `[{"active":true}]`), opaqueToken, CodeIntrospectionFailed},
		{"fail/non-JSON body", jsonAnswer(200, `active=true`), opaqueToken, CodeIntrospectionFailed},
		{"fail/non-JSON content type", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte(`{"active":true}`))
		}, opaqueToken, CodeIntrospectionFailed},
		{"fail/status 500", jsonAnswer(500, `{"active":true}`), opaqueToken, CodeIntrospectionFailed},
		{"fail/status 401", jsonAnswer(401, `{"error":"invalid_client"}`), opaqueToken, CodeIntrospectionFailed},
		{"fail/redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://elsewhere.example/introspect", http.StatusTemporaryRedirect)
		}, opaqueToken, CodeIntrospectionFailed},
		{"fail/response over 64 KiB", jsonAnswer(200, `{"active":true,"pad":"`+strings.Repeat("x", 64<<10)+`"}`), opaqueToken, CodeIntrospectionFailed},
		{"fail/timeout", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, opaqueToken, CodeIntrospectionFailed},
		{"fail/another issuer", jsonAnswer(200, `{"active":true,"iss":"`+issIntro+`/"}`), opaqueToken, CodeIssuerUntrusted},
		{"fail/iss not a string", jsonAnswer(200, `{"active":true,"iss":1}`), opaqueToken, CodeIntrospectionFailed},
		{"fail/expired", jsonAnswer(200, `{"active":true,"exp":`+itoa(testNow.Add(-time.Hour).Unix())+`}`), opaqueToken, CodeExpired},
		{"fail/exp as a string", jsonAnswer(200, `{"active":true,"exp":"`+itoa(exp)+`"}`), opaqueToken, CodeIntrospectionFailed},
		{"fail/nbf in the future", jsonAnswer(200, `{"active":true,"nbf":`+itoa(testNow.Add(time.Hour).Unix())+`}`), opaqueToken, CodeNotYetValid},
		{"fail/another audience", jsonAnswer(200, `{"active":true,"aud":"https://other-api.example"}`), opaqueToken, CodeAudienceMismatch},
		{"fail/empty audience array", jsonAnswer(200, `{"active":true,"aud":[]}`), opaqueToken, CodeAudienceMismatch},
		{"fail/refresh token", jsonAnswer(200, `{"active":true,"token_type":"refresh_token"}`), opaqueToken, CodeTypeInvalid},
		{"fail/sub not a string", jsonAnswer(200, `{"active":true,"sub":{}}`), opaqueToken, CodeIntrospectionFailed},
		{"fail/empty segment never reaches the server", nil, "abc..def", CodeTokenMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newIntroServer(t)
			srv.set(tt.answer)
			v := newIntroVerifier(t, srv.URL, &clock{t: testNow}, time.Minute)
			got, err := v.Verify(context.Background(), tt.token)
			wantCode(t, tt.token, got, err, tt.code)
			if srv.lastErr != "" {
				t.Errorf("bad introspection request: %s", srv.lastErr)
			}
			if err != nil && strings.Contains(err.Error(), introSecret) {
				t.Errorf("error repeats the client secret: %v", err)
			}
		})
	}
}

func TestIntrospectionConnectionRefused(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	endpoint := srv.URL
	srv.Close()
	v := newIntroVerifier(t, endpoint, &clock{t: testNow}, time.Minute)
	_, err := v.Verify(context.Background(), opaqueToken)
	wantCode(t, opaqueToken, nil, err, CodeIntrospectionFailed)
}

func TestIntrospectionToken(t *testing.T) {
	srv := newIntroServer(t)
	exp := testNow.Add(time.Hour)
	srv.set(jsonAnswer(200, `{"active":true,"sub":"user-2","client_id":"c-2","scope":"read write","exp":`+itoa(exp.Unix())+
		`,"cnf":{"jkt":"thumb"},"token_type":"Bearer"}`))
	v := newIntroVerifier(t, srv.URL, &clock{t: testNow}, time.Minute)
	tok, err := v.Verify(context.Background(), opaqueToken)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Source != SourceIntrospection || tok.Issuer != issIntro || tok.Subject != "user-2" || tok.ClientID != "c-2" ||
		strings.Join(tok.Scopes, " ") != "read write" || !tok.ExpiresAt.Equal(exp) || tok.Confirmation.JKT != "thumb" ||
		tok.Alg != "" || tok.Hash != HashToken(opaqueToken) || tok.Claims == nil {
		t.Fatalf("token = %+v", tok)
	}
}

func TestIntrospectionCache(t *testing.T) {
	ctx := context.Background()
	t.Run("active answers are cached up to the cache TTL", func(t *testing.T) {
		srv := newIntroServer(t)
		clk := &clock{t: testNow}
		v := newIntroVerifier(t, srv.URL, clk, time.Minute)
		for range 3 {
			if _, err := v.Verify(ctx, opaqueToken); err != nil {
				t.Fatal(err)
			}
		}
		if n := srv.calls.Load(); n != 1 {
			t.Fatalf("calls = %d, want 1", n)
		}
		clk.Advance(61 * time.Second)
		if _, err := v.Verify(ctx, opaqueToken); err != nil {
			t.Fatal(err)
		}
		if n := srv.calls.Load(); n != 2 {
			t.Fatalf("calls after the TTL = %d, want 2", n)
		}
	})
	t.Run("never past exp", func(t *testing.T) {
		srv := newIntroServer(t)
		srv.set(jsonAnswer(200, `{"active":true,"exp":`+itoa(testNow.Add(10*time.Second).Unix())+`}`))
		clk := &clock{t: testNow}
		v := newIntroVerifier(t, srv.URL, clk, time.Hour)
		if _, err := v.Verify(ctx, opaqueToken); err != nil {
			t.Fatal(err)
		}
		clk.Advance(11 * time.Second)
		if _, err := v.Verify(ctx, opaqueToken); err != nil {
			t.Fatal(err) // within skew, but asked again
		}
		if n := srv.calls.Load(); n != 2 {
			t.Fatalf("calls after exp = %d, want 2", n)
		}
	})
	t.Run("inactive answers are not cached", func(t *testing.T) {
		srv := newIntroServer(t)
		srv.set(jsonAnswer(200, `{"active":false}`))
		v := newIntroVerifier(t, srv.URL, &clock{t: testNow}, time.Minute)
		for range 2 {
			_, err := v.Verify(ctx, opaqueToken)
			wantCode(t, opaqueToken, nil, err, CodeInactive)
		}
		if n := srv.calls.Load(); n != 2 {
			t.Fatalf("calls = %d, want 2", n)
		}
	})
	t.Run("Forget purges the entry", func(t *testing.T) {
		srv := newIntroServer(t)
		v := newIntroVerifier(t, srv.URL, &clock{t: testNow}, time.Minute)
		tok, err := v.Verify(ctx, opaqueToken)
		if err != nil {
			t.Fatal(err)
		}
		srv.set(jsonAnswer(200, `{"active":false}`))
		v.Forget(tok.Hash)
		_, err = v.Verify(ctx, opaqueToken)
		wantCode(t, opaqueToken, nil, err, CodeInactive)
		v.Forget("not a hash")
		v.Forget(strings.Repeat("A", 1000))
	})
	t.Run("concurrent requests share one call", func(t *testing.T) {
		srv := newIntroServer(t)
		release := make(chan struct{})
		srv.set(func(w http.ResponseWriter, r *http.Request) {
			<-release
			jsonAnswer(200, `{"active":true}`)(w, r)
		})
		v, err := NewVerifier(ctx, []config.Issuer{{
			Issuer: issIntro, Audiences: []string{apiAud},
			Introspection: &config.Introspection{Endpoint: srv.URL, ClientID: introClient,
				ClientSecretFile: writeFile(t, "secret", []byte(introSecret)), CacheTTL: time.Minute, Timeout: 10 * time.Second},
		}}, Options{Now: (&clock{t: testNow}).Now})
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 10 {
			wg.Go(func() {
				if _, err := v.Verify(ctx, opaqueToken); err != nil {
					t.Error(err)
				}
			})
		}
		waitFor(t, func() bool { return srv.calls.Load() >= 1 })
		time.Sleep(20 * time.Millisecond) // let the other requests join
		close(release)
		wg.Wait()
		if n := srv.calls.Load(); n != 1 {
			t.Fatalf("calls = %d, want 1", n)
		}
	})
}

func TestJWTOfIntrospectionOnlyIssuerIsIntrospected(t *testing.T) {
	srv := newIntroServer(t)
	v := newIntroVerifier(t, srv.URL, &clock{t: testNow}, time.Minute)
	iss := newIssuer(t, issIntro, "ES256")
	raw := mint(t, iss, nil)
	tok, err := v.Verify(context.Background(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if tok.Source != SourceIntrospection || srv.calls.Load() != 1 {
		t.Fatalf("source = %s, calls = %d", tok.Source, srv.calls.Load())
	}
}

func TestOpaqueTokenWithoutIntrospection(t *testing.T) {
	f := newFixture(t)
	_, err := f.v.Verify(context.Background(), opaqueToken)
	wantCode(t, opaqueToken, nil, err, CodeTokenMalformed)
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
