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

// TokenVerifier verifies the tokens presented for revocation.
type TokenVerifier interface {
	Verify(ctx context.Context, raw string) (*token.Token, error)
	Forget(hash string)
}

// Revoke configures POST /v1/revoke, token revocation in the shape of
// RFC 7009. Holding a token that verifies is the authority to revoke it: a
// forged or unknown token revokes nothing.
type Revoke struct {
	Tokens TokenVerifier
	Store  interface {
		PutRevocation(ctx context.Context, r store.Revocation) (store.Revocation, error)
	}
	// RevocationTTL is how long a session revocation applies.
	RevocationTTL time.Duration
	Now           func() time.Time
}

// maxRevokeBody bounds a revocation request: one token and a hint.
const maxRevokeBody = 32 << 10

// jtiGrace keeps a jti revocation a little past the token's exp, to cover
// the verifier's clock skew.
const jtiGrace = 10 * time.Minute

// TokenHashPrefix marks a jti revocation of a token without a jti: the value
// is "sha256:" and the token's hash, which the policy asks for instead.
const TokenHashPrefix = "sha256:"

type revoke struct {
	cfg    Revoke
	logger *slog.Logger
}

// oauthError writes an RFC 6749 §5.2 style error, as RFC 7009 §2.2.1 asks.
func oauthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": description})
}

func (v *revoke) serveHTTP(w http.ResponseWriter, r *http.Request) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxRevokeBody)
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the body is not a valid form")
		return
	}
	form := r.PostForm
	if len(form["token"]) != 1 || form.Get("token") == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "exactly one token parameter is required")
		return
	}
	raw, hint := form.Get("token"), form.Get("token_type_hint")
	tok, err := v.cfg.Tokens.Verify(r.Context(), raw)
	if err != nil {
		// RFC 7009 §2.2: an invalid token is answered 200 all the same;
		// nothing is revoked, so a forged token cannot revoke anything.
		var te *token.Error
		code := "unknown"
		if errors.As(err, &te) {
			code = te.Code
		}
		v.logger.Info("revocation request with a token that does not verify", "token_sha256", token.HashToken(raw), "code", code)
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		return
	}
	now := v.cfg.Now()
	var revs []store.Revocation
	jti := tok.JTI
	if jti == "" {
		jti = TokenHashPrefix + tok.Hash
	}
	exp := tok.ExpiresAt
	if exp.IsZero() || exp.Before(now) {
		exp = now
	}
	revs = append(revs, store.Revocation{Kind: store.KindJTI, Issuer: tok.Issuer, Value: jti, Reason: "rfc7009",
		CreatedAt: now, ExpiresAt: exp.Add(jtiGrace)})
	// Revoking a refresh token revokes the access tokens of its session
	// (checklist section 3).
	if sid := sessionID(tok); hint == "refresh_token" && sid != "" {
		revs = append(revs, store.Revocation{Kind: store.KindSession, Issuer: tok.Issuer, Value: sid, Reason: "rfc7009:refresh_token",
			CreatedAt: now, NotBefore: now, ExpiresAt: now.Add(v.cfg.RevocationTTL)})
	}
	for _, rev := range revs {
		if _, err := v.cfg.Store.PutRevocation(r.Context(), rev); err != nil {
			v.logger.Error("store revocation", "error", err, "token_sha256", tok.Hash)
			oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable", "the revocation could not be stored; retry")
			return
		}
	}
	v.cfg.Tokens.Forget(tok.Hash)
	v.logger.Info("token revoked", "token_sha256", tok.Hash, "iss", tok.Issuer, "revocations", len(revs))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// sessionID is the token's sid claim, if it is a string.
func sessionID(t *token.Token) string {
	if t.Claims == nil {
		return ""
	}
	if v := t.Claims.Get(ast.StringTerm("sid")); v != nil {
		if s, ok := v.Value.(ast.String); ok {
			return string(s)
		}
	}
	return ""
}
