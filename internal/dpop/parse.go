package dpop

import (
	"errors"
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/jose"
	"github.com/tokenguard/pdp/internal/jsonast"
)

// Shape limits, checked before anything is decoded (D1).
const (
	// MaxProofSize is the largest DPoP header value accepted, in bytes.
	MaxProofSize = 8 << 10
	// maxHeaderDepth bounds the nesting of the protected header: the
	// header, its jwk, and an array inside the jwk (x5c, key_ops).
	maxHeaderDepth = 3
	// maxPayloadDepth bounds the nesting of the claims.
	maxPayloadDepth = 8
)

// compactProof is a proof split and decoded; nothing is verified yet.
type compactProof struct {
	raw       string
	header    ast.Object
	payload   ast.Object
	signature []byte
}

// parseCompact applies D1 to one DPoP header value: size, alphabet, three
// non-empty segments, strict base64url, and header and payload that are
// strict JSON objects (no duplicate members at any depth).
func parseCompact(raw string) (*compactProof, *Error) {
	if len(raw) > MaxProofSize {
		return nil, invalid(fmt.Sprintf("DPoP proof is longer than %d bytes", MaxProofSize))
	}
	for i := 0; i < len(raw); i++ {
		if !jose.IsCompactChar(raw[i]) {
			return nil, invalid("DPoP proof contains characters outside [A-Za-z0-9_.-]")
		}
	}
	switch strings.Count(raw, ".") {
	case 2:
	case 4:
		return nil, invalid("DPoP proof must be a signed JWT, not an encrypted one")
	default:
		return nil, invalid("DPoP proof is not a compact JWS")
	}
	h, rest, _ := strings.Cut(raw, ".")
	p, s, _ := strings.Cut(rest, ".")
	if h == "" || p == "" || s == "" {
		return nil, invalid("DPoP proof has an empty segment")
	}
	header, err := decodeObject(h, maxHeaderDepth)
	if err != nil {
		return nil, invalidWrap("DPoP proof header is not a base64url JSON object", err)
	}
	payload, err := decodeObject(p, maxPayloadDepth)
	if err != nil {
		return nil, invalidWrap("DPoP proof payload is not a base64url JSON object", err)
	}
	sig, err := jose.B64.DecodeString(s)
	if err != nil {
		return nil, invalidWrap("DPoP proof signature is not base64url", err)
	}
	return &compactProof{raw: raw, header: header, payload: payload, signature: sig}, nil
}

func decodeObject(segment string, maxDepth int) (ast.Object, error) {
	data, err := jose.B64.DecodeString(segment)
	if err != nil {
		return nil, fmt.Errorf("decoding base64url: %w", err)
	}
	v, err := jsonast.Parse(data, maxDepth)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%w: top level is not an object", jsonast.ErrSyntax)
	}
	return obj, nil
}

// errWrongType reports a member of the wrong JSON type.
var errWrongType = errors.New("wrong JSON type")

// optString returns the string member name of obj; present reports whether
// the member exists, and err is set when it is not a string.
func optString(obj ast.Object, name *ast.Term) (s string, present bool, err error) {
	t := obj.Get(name)
	if t == nil {
		return "", false, nil
	}
	v, ok := t.Value.(ast.String)
	if !ok {
		return "", true, errWrongType
	}
	return string(v), true, nil
}
