package natsauth

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// The subject nats-server sends authorization requests on, and the header
// that carries its curve key when the request is encrypted.
const (
	CalloutSubject = "$SYS.REQ.USER.AUTH"
	XKeyHeader     = "Nats-Server-Xkey"
)

// MaxRequestBytes bounds an authorization request as it arrives (encrypted
// or not). The server's own parts are small; the client's connect options
// (its token, name, user) and TLS certificates make up the rest.
const MaxRequestBytes = 256 << 10

// MaxServerIDBytes bounds the server id a request names (an nkey: 56
// characters), which becomes a token of the kick subject.
const MaxServerIDBytes = 128

// ErrRequest is wrapped by every error parseRequest returns: the request
// cannot be answered (no user key to answer for, or a forged request).
var ErrRequest = errors.New("natsauth: invalid authorization request")

// authRequest is what the PDP reads from an authorization request.
type authRequest struct {
	// UserNkey is the public key the server created for the connecting
	// client: the answer and the user JWT are about it.
	UserNkey string
	// ServerID is the id of the server the client connects to (the
	// answer's audience, and where a kick goes).
	ServerID string
	// ClientID is the client's connection id on that server.
	ClientID uint64
	// Host is the client's address as the server saw it.
	Host string
	// Token is what the client gave as its auth_token, else its password;
	// "" when neither. Never logged.
	Token string
	// ServerXKey is the server's curve key when the request came
	// encrypted: the answer is encrypted for it.
	ServerXKey string
}

// parseRequest reads an authorization request: decrypted with xkey when
// the server sent its curve key in serverXKey, then decoded as a JWT signed
// by the server it names. xkey may be nil when no encryption is configured.
func parseRequest(data []byte, serverXKey string, xkey nkeys.KeyPair) (*authRequest, error) {
	if len(data) > MaxRequestBytes {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrRequest, len(data), MaxRequestBytes)
	}
	if serverXKey != "" {
		if xkey == nil {
			return nil, fmt.Errorf("%w: encrypted, and no xkey_seed_file is configured", ErrRequest)
		}
		if !nkeys.IsValidPublicCurveKey(serverXKey) {
			return nil, fmt.Errorf("%w: the %s header is not a curve key", ErrRequest, XKeyHeader)
		}
		plain, err := xkey.Open(data, serverXKey)
		if err != nil {
			return nil, fmt.Errorf("%w: cannot be decrypted: %v", ErrRequest, err)
		}
		data = plain
	} else if xkey != nil {
		// With xkey configured on both sides, every request is encrypted:
		// a plain one did not come from a server configured with it.
		return nil, fmt.Errorf("%w: not encrypted, and xkey_seed_file is configured", ErrRequest)
	}
	if !bytes.HasPrefix(data, []byte("eyJ")) {
		return nil, fmt.Errorf("%w: not a JWT", ErrRequest)
	}
	// DecodeAuthorizationRequestClaims checks the signature against the
	// issuer the claims name (the server's nkey).
	claims, err := jwt.DecodeAuthorizationRequestClaims(string(data))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrRequest, err)
	}
	// Blocking problems only: the exp check is left out, since exp is the
	// server's clock plus its authorization timeout (a clock skew of more
	// would refuse every client) and a replayed request is harmless: its
	// answer is for a user key the server no longer waits for.
	vr := jwt.CreateValidationResults()
	claims.Validate(vr)
	if errs := vr.Errors(); len(errs) > 0 {
		return nil, fmt.Errorf("%w: %v", ErrRequest, errs[0])
	}
	if !nkeys.IsValidPublicServerKey(claims.Issuer) {
		return nil, fmt.Errorf("%w: not signed by a server key", ErrRequest)
	}
	if !nkeys.IsValidPublicUserKey(claims.UserNkey) {
		return nil, fmt.Errorf("%w: user_nkey is not a user key", ErrRequest)
	}
	if id := claims.Server.ID; id == "" || len(id) > MaxServerIDBytes || !alnum(id) {
		return nil, fmt.Errorf("%w: the server id must be 1 to %d letters and digits", ErrRequest, MaxServerIDBytes)
	}
	if serverXKey != "" && claims.Server.XKey != serverXKey {
		return nil, fmt.Errorf("%w: the server's xkey differs from the header's", ErrRequest)
	}
	tok := claims.ConnectOptions.Token
	if tok == "" {
		tok = claims.ConnectOptions.Password
	}
	return &authRequest{
		UserNkey:   claims.UserNkey,
		ServerID:   claims.Server.ID,
		ClientID:   claims.ClientInformation.ID,
		Host:       claims.ClientInformation.Host,
		Token:      tok,
		ServerXKey: serverXKey,
	}, nil
}

func alnum(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
