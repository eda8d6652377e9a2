package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// TokenVerifier verifies the tokens presented for revocation: access
// tokens (Verify) and refresh tokens (VerifyRefresh, the verifier of the
// token endpoint).
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*token.Token, error)
	VerifyRefresh(ctx context.Context, raw string) (*token.Token, error)
	Forget(hash string)
}

// RevokeObserver is told the outcome of every revocation request (for
// metrics): one of the Revoke* outcome constants.
type RevokeObserver interface {
	RevokeRequest(outcome string)
}

// Outcomes of a revocation request (RevokeObserver.RevokeRequest).
const (
	RevokeRevoked         = "revoked"
	RevokeInvalidToken    = "invalid_token"
	RevokeClientMismatch  = "client_mismatch"
	RevokeUnauthenticated = "unauthenticated"
	RevokeInvalidRequest  = "invalid_request"
	RevokeStoreFailure    = "store_failure"
)

// RevokeOutcomes are the outcomes a revocation request can have.
var RevokeOutcomes = []string{RevokeRevoked, RevokeInvalidToken, RevokeClientMismatch, RevokeUnauthenticated, RevokeInvalidRequest, RevokeStoreFailure}

// Revoke configures POST /v1/revoke, token revocation in the shape of
// RFC 7009. The caller authenticates as a client (RFC 7009 §2.1) and may
// revoke only the tokens issued to it; a gateway authenticated as in
// decide.auth may revoke any. A token that does not verify revokes
// nothing. The endpoint is served only when someone can authenticate:
// with Clients, or with a gateway credential or client CA.
type Revoke struct {
	Tokens TokenVerifier
	Store  interface {
		PutRevocation(ctx context.Context, r store.Revocation) (store.Revocation, error)
	}
	// Clients are the clients that may revoke their own tokens.
	Clients []RevokeClient
	// Gateway admits gateways, which may revoke any client's tokens.
	Gateway GatewayAuth
	// RevocationTTL is how long a session or subject revocation applies.
	RevocationTTL time.Duration
	// RefreshTarget says what revoking a refresh token of session sid and
	// subject sub cuts off ("session" or "subject", and the value), by the
	// active policy's token_endpoint.refresh_reuse rule; nil: the session,
	// else the subject.
	RefreshTarget func(sid, sub string) (kind, value string, ok bool)
	Observer      RevokeObserver
	Now           func() time.Time
}

// maxRevokeBody bounds a revocation request: one token, a hint and the
// client's credentials.
const maxRevokeBody = 32 << 10

// jtiGrace keeps a jti revocation a little past the token's exp, to cover
// the verifier's clock skew.
const jtiGrace = 10 * time.Minute

// TokenHashPrefix marks a jti revocation of a token without a jti: the value
// is "sha256:" and the token's hash, which the policy asks for instead.
const TokenHashPrefix = "sha256:"

// Revoke's WWW-Authenticate challenge for a request without valid client
// credentials (RFC 6749 §5.2).
const revokeChallenge = `Basic realm="tokenguard"`

type revoke struct {
	cfg    Revoke
	auth   *clientAuth
	logger *slog.Logger
}

type noRevokeObserver struct{}

func (noRevokeObserver) RevokeRequest(string) {}

func newRevoke(cfg Revoke, logger *slog.Logger) *revoke {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Observer == nil {
		cfg.Observer = noRevokeObserver{}
	}
	if cfg.RefreshTarget == nil {
		cfg.RefreshTarget = func(sid, sub string) (string, string, bool) {
			switch {
			case sid != "":
				return string(store.KindSession), sid, true
			case sub != "":
				return string(store.KindSubject), sub, true
			}
			return "", "", false
		}
	}
	return &revoke{cfg: cfg, auth: newClientAuth(cfg.Clients, cfg.Gateway), logger: logger}
}

// oauthError writes an RFC 6749 §5.2 style error, as RFC 7009 §2.2.1 asks.
func oauthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

func (v *revoke) serveHTTP(w http.ResponseWriter, r *http.Request) {
	outcome := v.serve(w, r)
	v.cfg.Observer.RevokeRequest(outcome)
}

func (v *revoke) serve(w http.ResponseWriter, r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return RevokeInvalidRequest
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRevokeBody)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body is not a valid form")
		return RevokeInvalidRequest
	}
	form := r.PostForm
	who, err := v.auth.authenticate(r, form)
	switch {
	case errors.Is(err, errAmbiguousAuth):
		oauthError(w, http.StatusBadRequest, "invalid_request", "use exactly one client authentication method, once")
		return RevokeInvalidRequest
	case err != nil:
		v.logger.Info("revocation request without valid client authentication", "remote", r.RemoteAddr)
		w.Header().Set("WWW-Authenticate", revokeChallenge)
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return RevokeUnauthenticated
	}
	if len(form["token"]) != 1 || form.Get("token") == "" || len(form["token_type_hint"]) > 1 {
		oauthError(w, http.StatusBadRequest, "invalid_request", "exactly one token parameter is required")
		return RevokeInvalidRequest
	}
	raw, hint := form.Get("token"), form.Get("token_type_hint")
	tok, refresh, err := v.verify(r.Context(), raw, hint)
	if err != nil {
		// RFC 7009 §2.2: an invalid token is answered 200 all the same;
		// nothing is revoked, so a forged token cannot revoke anything.
		var te *token.Error
		code := "unknown"
		if errors.As(err, &te) {
			code = te.Code
		}
		v.logger.Info("revocation request with a token that does not verify", "token_sha256", token.HashToken(raw), "code", code,
			"client_id", who.clientID, "gateway", who.gateway)
		return revokeOK(w, RevokeInvalidToken)
	}
	if owner := tokenClient(tok); !who.gateway && (owner != who.clientID || (who.issuer != "" && tok.Issuer != who.issuer)) {
		// RFC 7009 §2.1: the token must have been issued to the client
		// asking, by the issuer that registered it (another issuer's
		// client may bear the same id); the answer is 200 all the same,
		// so that a client learns nothing about others' tokens.
		v.logger.Warn("revocation of another client's token refused", "token_sha256", tok.Hash, "iss", tok.Issuer,
			"client_id", who.clientID, "token_client_id", owner)
		return revokeOK(w, RevokeClientMismatch)
	}
	revs := v.revocations(tok, refresh)
	for _, rev := range revs {
		if _, err := v.cfg.Store.PutRevocation(r.Context(), rev); err != nil {
			v.logger.Error("store revocation", "error", err, "token_sha256", tok.Hash)
			oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the revocation could not be stored; retry")
			return RevokeStoreFailure
		}
	}
	v.cfg.Tokens.Forget(tok.Hash)
	v.logger.Info("token revoked", "token_sha256", tok.Hash, "iss", tok.Issuer, "refresh_token", refresh, "revocations", len(revs),
		"client_id", who.clientID, "gateway", who.gateway)
	return revokeOK(w, RevokeRevoked)
}

func revokeOK(w http.ResponseWriter, outcome string) string {
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	return outcome
}

// verify verifies raw as an access token and as a refresh token, in the
// order the hint suggests (RFC 7009 §2.1: a wrong hint only costs a second
// try). refresh reports that it verified as a refresh token. The error is
// the first verifier's.
func (v *revoke) verify(ctx context.Context, raw, hint string) (tok *token.Token, refresh bool, err error) {
	access := func() (*token.Token, error) { return v.cfg.Tokens.Verify(ctx, raw) }
	refreshTok := func() (*token.Token, error) { return v.cfg.Tokens.VerifyRefresh(ctx, raw) }
	first, second := access, refreshTok
	if hint == "refresh_token" {
		first, second = refreshTok, access
	}
	tok, err = first()
	if err == nil {
		return tok, hint == "refresh_token", nil
	}
	tok, err2 := second()
	if err2 == nil {
		return tok, hint != "refresh_token", nil
	}
	return nil, false, err
}

// revocations are what revoking tok writes: its jti (or hash) until it
// expires, and for a refresh token the session or subject it belongs to,
// so that the access tokens of its grant stop too (checklist section 3).
func (v *revoke) revocations(tok *token.Token, refresh bool) []store.Revocation {
	now := v.cfg.Now()
	jti := tok.JTI
	if jti == "" {
		jti = TokenHashPrefix + tok.Hash
	}
	exp := tok.ExpiresAt
	switch {
	case exp.IsZero() && refresh:
		// A refresh token without exp lives as long as its grant.
		exp = now.Add(v.cfg.RevocationTTL)
	case exp.IsZero() || exp.Before(now):
		exp = now
	}
	revs := []store.Revocation{{Kind: store.KindJTI, Issuer: tok.Issuer, Value: jti, Reason: "rfc7009",
		CreatedAt: now, ExpiresAt: store.ClampExpiry(exp.Add(jtiGrace))}}
	if !refresh {
		return revs
	}
	if kind, value, ok := v.cfg.RefreshTarget(sessionID(tok), tok.Subject); ok {
		revs = append(revs, store.Revocation{Kind: store.Kind(kind), Issuer: tok.Issuer, Value: value, Reason: "rfc7009:refresh_token",
			CreatedAt: now, NotBefore: now, ExpiresAt: store.ClampExpiry(now.Add(v.cfg.RevocationTTL))})
	}
	return revs
}

// tokenClient is the client a token was issued to: client_id (RFC 9068),
// else azp (OpenID Connect), else cid (as some servers name it).
func tokenClient(t *token.Token) string {
	if t.ClientID != "" {
		return t.ClientID
	}
	for _, name := range []string{"azp", "cid"} {
		if v := claimString(t, name); v != "" {
			return v
		}
	}
	return ""
}

// sessionID is the token's sid claim, if it is a string.
func sessionID(t *token.Token) string { return claimString(t, "sid") }

// claimString is the claim name of t, if it is a string.
func claimString(t *token.Token, name string) string {
	if t.Claims == nil {
		return ""
	}
	if v := t.Claims.Get(ast.StringTerm(name)); v != nil {
		if s, ok := v.Value.(ast.String); ok {
			return string(s)
		}
	}
	return ""
}
