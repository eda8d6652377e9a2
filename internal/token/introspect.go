package token

import (
	"context"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/config"
)

// maxIntrospectionResponse bounds an introspection response body.
const maxIntrospectionResponse = 64 << 10

var (
	cActive    = ast.StringTerm("active")
	cTokenType = ast.StringTerm("token_type")
)

// introspector asks the one introspecting issuer about opaque tokens
// (RFC 7662), failing closed on anything but a clear answer.
type introspector struct {
	is       *issuer
	endpoint string
	// user and pass are the HTTP Basic credentials, already form-encoded
	// (RFC 6749 §2.3.1).
	user, pass string
	timeout    time.Duration
	ttl        time.Duration

	mu sync.Mutex
	// calls lets concurrent requests with the same token share one call.
	calls map[[32]byte]*introspection
}

// introspection is one call in flight and, once done is closed, its result.
type introspection struct {
	done  chan struct{}
	tok   *Token
	err   *Error
	until time.Time
}

func newIntrospector(is *issuer, in *config.Introspection) (*introspector, error) {
	secret, err := os.ReadFile(in.ClientSecretFile)
	if err != nil {
		return nil, fmt.Errorf("reading introspection client secret: %w", err)
	}
	pass := strings.TrimSpace(string(secret))
	if pass == "" {
		return nil, fmt.Errorf("introspection client secret file %s is empty", in.ClientSecretFile)
	}
	if in.ClientID == "" {
		return nil, fmt.Errorf("introspection client_id is empty")
	}
	timeout := in.Timeout
	if timeout <= 0 {
		timeout = config.DefaultIntrospectTimeout
	}
	return &introspector{
		is:       is,
		endpoint: in.Endpoint,
		user:     url.QueryEscape(in.ClientID),
		pass:     url.QueryEscape(pass),
		timeout:  timeout,
		ttl:      in.CacheTTL,
		calls:    map[[32]byte]*introspection{},
	}, nil
}

// introspect verifies raw at the introspection endpoint, sharing the call
// with concurrent requests for the same token, and caches an active
// answer.
func (v *Verifier) introspect(ctx context.Context, raw string, sum [32]byte) (*Token, *Error) {
	in := v.introspector
	in.mu.Lock()
	call, ok := in.calls[sum]
	if !ok {
		call = &introspection{done: make(chan struct{})}
		in.calls[sum] = call
		go func() {
			call.tok, call.err, call.until = v.callIntrospection(context.WithoutCancel(ctx), raw, sum)
			if call.err == nil && !call.until.IsZero() {
				v.cache.put(sum, &cacheEntry{tok: call.tok, until: call.until}, v.now())
			}
			in.mu.Lock()
			delete(in.calls, sum)
			in.mu.Unlock()
			close(call.done)
		}()
	}
	in.mu.Unlock()
	select {
	case <-call.done:
		if call.err != nil {
			return nil, call.err
		}
		return call.tok, nil
	case <-ctx.Done():
		return nil, failWrap(CodeIntrospectionFailed, "token introspection did not answer in time", ctx.Err())
	}
}

// callIntrospection performs one RFC 7662 call and interprets the answer.
// It returns the token and how long it may be cached (zero: not at all).
func (v *Verifier) callIntrospection(ctx context.Context, raw string, sum [32]byte) (*Token, *Error, time.Time) {
	in := v.introspector
	ctx, cancel := context.WithTimeout(ctx, in.timeout)
	defer cancel()

	obj, err := in.post(ctx, v.client, raw)
	v.obs.Introspected(introspectionOutcome(obj, err))
	if err != nil {
		return nil, failWrap(CodeIntrospectionFailed, "token introspection failed", err), time.Time{}
	}
	switch active := obj.Get(cActive); {
	case active == nil:
		return nil, fail(CodeIntrospectionFailed, `introspection response has no "active" member`), time.Time{}
	case active.Value.Compare(ast.Boolean(false)) == 0:
		return nil, fail(CodeInactive, "token is not active"), time.Time{}
	case active.Value.Compare(ast.Boolean(true)) != 0:
		return nil, fail(CodeIntrospectionFailed, `introspection "active" is not the boolean true`), time.Time{}
	}
	switch iss, ok, err := optString(obj, cIss); {
	case err != nil:
		return nil, fail(CodeIntrospectionFailed, `introspection "iss" is not a string`), time.Time{}
	case ok && iss != in.is.cfg.Issuer:
		return nil, fail(CodeIssuerUntrusted, "introspection names another issuer"), time.Time{}
	}
	switch tt, _, err := optString(obj, cTokenType); {
	case err != nil:
		return nil, fail(CodeIntrospectionFailed, `introspection "token_type" is not a string`), time.Time{}
	case strings.Contains(strings.ToLower(tt), "refresh"):
		return nil, fail(CodeTypeInvalid, "a refresh token is not an access token"), time.Time{}
	}

	tok := &Token{
		Hash:         hashString(sum),
		Source:       SourceIntrospection,
		Verification: verifications.Add(1),
		Issuer:       in.is.cfg.Issuer,
		Claims:       obj,
	}
	if e := readClaims(tok, obj, in.is.cfg.Audiences, introspectionRules); e != nil {
		return nil, e, time.Time{}
	}
	now := v.now()
	if e := checkTimes(tok, now, v.skew); e != nil {
		return nil, e, time.Time{}
	}
	ttl := in.ttl
	if !tok.ExpiresAt.IsZero() {
		ttl = min(ttl, tok.ExpiresAt.Sub(now))
	}
	if ttl <= 0 {
		tok.FreshUntil = now
		return tok, nil, time.Time{}
	}
	tok.FreshUntil = now.Add(ttl)
	return tok, nil, now.Add(ttl)
}

// introspectionOutcome classifies the answer of one call for the
// Observer: only the JSON boolean true is active, only false inactive.
func introspectionOutcome(obj ast.Object, err error) string {
	if err != nil {
		return IntrospectionError
	}
	switch active := obj.Get(cActive); {
	case active == nil:
		return IntrospectionError
	case active.Value.Compare(ast.Boolean(true)) == 0:
		return IntrospectionActive
	case active.Value.Compare(ast.Boolean(false)) == 0:
		return IntrospectionInactive
	}
	return IntrospectionError
}

// post sends the introspection request and returns the parsed response.
func (in *introspector) post(ctx context.Context, client *http.Client, raw string) (ast.Object, error) {
	return in.postHint(ctx, client, raw, "access_token")
}

// postHint sends an introspection request with the given token_type_hint.
func (in *introspector) postHint(ctx context.Context, client *http.Client, raw, hint string) (ast.Object, error) {
	form := url.Values{"token": {raw}, "token_type_hint": {hint}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("building introspection request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(in.user, in.pass)
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("calling introspection endpoint: %w", err)
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspection endpoint answered status %d", resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		return nil, fmt.Errorf("introspection endpoint answered content type %q", resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxIntrospectionResponse+1))
	if err != nil {
		return nil, fmt.Errorf("reading introspection response: %w", err)
	}
	if len(body) > maxIntrospectionResponse {
		return nil, fmt.Errorf("introspection response larger than %d bytes", maxIntrospectionResponse)
	}
	obj, err := parseObject(body)
	if err != nil {
		return nil, fmt.Errorf("parsing introspection response: %w", err)
	}
	return obj, nil
}
