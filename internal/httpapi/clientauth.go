package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
)

// RevokeClient is a client that may revoke its own tokens at /v1/revoke:
// its client_id, the SHA-256 of its secret (RFC 6749 §2.3.1) and the issuer
// that registered it, whose tokens alone are its own ("": any issuer, for
// a decision point with a single one).
type RevokeClient struct {
	ID           string
	SecretSHA256 [sha256.Size]byte
	Issuer       string
}

// Bounds of client authentication, checked before anything is decoded or
// hashed.
const (
	// maxAuthorizationLen bounds the Authorization header of a revocation
	// request.
	maxAuthorizationLen = 1024
	// MaxClientIDLen and MaxClientSecretLen bound a client's id and secret.
	MaxClientIDLen     = 256
	MaxClientSecretLen = 512
	// MinClientSecretLen is the shortest secret accepted: the secrets are
	// generated, high-entropy values, which is what makes a fast hash of
	// them safe to store.
	MinClientSecretLen = 32
)

// Client authentication errors: errAmbiguousAuth is a request that uses
// more than one method (RFC 6749 §2.3: 400 invalid_request);
// errInvalidClient is missing, malformed or wrong credentials (401
// invalid_client).
var (
	errAmbiguousAuth = errors.New("more than one client authentication method")
	errInvalidClient = errors.New("client authentication failed")
)

// clientCredentials are the credentials a request presents.
type clientCredentials struct {
	id, secret string
	// method is "client_secret_basic" or "client_secret_post"; "" when the
	// request presents none.
	method string
}

// parseClientCredentials reads client_secret_basic (the Authorization
// header, RFC 7617, with id and secret form-urlencoded first as RFC 6749
// §2.3.1 asks) or client_secret_post (client_id and client_secret in the
// form). A request using both, or repeating a parameter or the header, is
// errAmbiguousAuth; a malformed or oversized one is errInvalidClient. A
// request without credentials is not an error: method is "".
func parseClientCredentials(authorization []string, form url.Values) (clientCredentials, error) {
	if len(authorization) > 1 || len(form["client_id"]) > 1 || len(form["client_secret"]) > 1 {
		return clientCredentials{}, errAmbiguousAuth
	}
	_, postSecret := form["client_secret"]
	if len(authorization) == 1 {
		if postSecret {
			return clientCredentials{}, errAmbiguousAuth
		}
		c, err := parseBasic(authorization[0])
		if err != nil {
			return clientCredentials{}, err
		}
		// client_id may accompany Basic, but must name the same client.
		if ids, ok := form["client_id"]; ok && ids[0] != c.id {
			return clientCredentials{}, errAmbiguousAuth
		}
		return c, nil
	}
	if !postSecret {
		return clientCredentials{}, nil
	}
	c := clientCredentials{id: form.Get("client_id"), secret: form.Get("client_secret"), method: "client_secret_post"}
	if err := c.check(); err != nil {
		return clientCredentials{}, err
	}
	return c, nil
}

// parseBasic reads an Authorization header of the Basic scheme.
func parseBasic(h string) (clientCredentials, error) {
	if len(h) > maxAuthorizationLen {
		return clientCredentials{}, errInvalidClient
	}
	scheme, param, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return clientCredentials{}, errInvalidClient
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(strings.TrimSpace(param))
	if err != nil {
		return clientCredentials{}, errInvalidClient
	}
	encID, encSecret, ok := strings.Cut(string(raw), ":")
	if !ok {
		return clientCredentials{}, errInvalidClient
	}
	id, err1 := url.QueryUnescape(encID)
	secret, err2 := url.QueryUnescape(encSecret)
	if err1 != nil || err2 != nil {
		return clientCredentials{}, errInvalidClient
	}
	c := clientCredentials{id: id, secret: secret, method: "client_secret_basic"}
	if err := c.check(); err != nil {
		return clientCredentials{}, err
	}
	return c, nil
}

// check bounds the id and the secret.
func (c clientCredentials) check() error {
	if c.id == "" || len(c.id) > MaxClientIDLen || c.secret == "" || len(c.secret) > MaxClientSecretLen {
		return errInvalidClient
	}
	return nil
}

// caller is who a revocation request comes from: a registered client, which
// may revoke its own tokens only (those of its issuer, when set), or a
// gateway, which may revoke any.
type caller struct {
	clientID string
	issuer   string
	gateway  bool
}

// clientAuth authenticates the callers of /v1/revoke.
type clientAuth struct {
	clients map[string]RevokeClient
	gateway GatewayAuth
	// gatewayDigest is SHA-256 of the gateway credential.
	gatewayDigest [sha256.Size]byte
}

func newClientAuth(clients []RevokeClient, gateway GatewayAuth) *clientAuth {
	a := &clientAuth{clients: make(map[string]RevokeClient, len(clients)), gateway: gateway}
	for _, c := range clients {
		a.clients[c.ID] = c
	}
	if gateway.Credential != "" {
		a.gatewayDigest = sha256.Sum256([]byte(gateway.Credential))
	}
	return a
}

// enabled reports whether anyone can authenticate at all.
func (a *clientAuth) enabled() bool { return len(a.clients) > 0 || a.gateway.enabled() }

// authenticate returns the caller of r, whose form has been parsed. Client
// credentials, when present, decide: a gateway forwarding a client's
// credentials revokes as that client. Without them, the gateway credential
// or a verified client certificate of decide.auth admits a gateway.
func (a *clientAuth) authenticate(r *http.Request, form url.Values) (caller, error) {
	creds, err := parseClientCredentials(r.Header.Values("Authorization"), form)
	if err != nil {
		return caller{}, err
	}
	if creds.method != "" {
		return a.client(creds)
	}
	if a.gateway.ClientCA && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
		return caller{gateway: true}, nil
	}
	if a.gateway.Credential != "" {
		if given := r.Header.Values(GatewayHeader); len(given) == 1 {
			d := sha256.Sum256([]byte(given[0]))
			if subtle.ConstantTimeCompare(d[:], a.gatewayDigest[:]) == 1 {
				return caller{gateway: true}, nil
			}
		}
	}
	return caller{}, errInvalidClient
}

// dummySecret is compared against when the client is unknown, so that an
// unknown client_id takes as long to refuse as a wrong secret.
var dummySecret = sha256.Sum256([]byte("tokenguard: no such client"))

// client checks a registered client's secret in constant time.
func (a *clientAuth) client(c clientCredentials) (caller, error) {
	rc, known := a.clients[c.id]
	want := rc.SecretSHA256
	if !known {
		want = dummySecret
	}
	got := sha256.Sum256([]byte(c.secret))
	match := subtle.ConstantTimeCompare(got[:], want[:]) == 1
	if !known || !match || len(c.secret) < MinClientSecretLen {
		return caller{}, errInvalidClient
	}
	return caller{clientID: c.id, issuer: rc.Issuer}, nil
}

// MaxSecretHashFile bounds a revoke client's secret file.
const MaxSecretHashFile = 1024

// ParseSecretHash reads the content of a revoke client's secret file: the
// hex SHA-256 of the secret (64 hex digits, as `sha256sum` prints it),
// surrounding white space ignored. Anything else, the secret itself in
// particular, is refused.
func ParseSecretHash(data []byte) ([sha256.Size]byte, error) {
	var sum [sha256.Size]byte
	if len(data) > MaxSecretHashFile {
		return sum, errors.New("the file is too large for a SHA-256 hex digest")
	}
	s := strings.TrimSpace(string(data))
	if len(s) != 2*sha256.Size {
		return sum, errors.New("the file must hold the hex SHA-256 of the secret (64 hex digits), not the secret")
	}
	if _, err := hex.Decode(sum[:], []byte(s)); err != nil {
		return sum, errors.New("the file must hold the hex SHA-256 of the secret (64 hex digits), not the secret")
	}
	return sum, nil
}
