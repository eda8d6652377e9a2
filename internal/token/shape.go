package token

import (
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/jose"
	"github.com/tokenguard/pdp/internal/jsonast"
)

// Shape limits checked before any parsing (J10).
const (
	// MaxTokenSize is the largest token accepted, in bytes.
	MaxTokenSize = 16 << 10
	// maxJSONDepth bounds the nesting of JOSE headers, claims and
	// introspection responses.
	maxJSONDepth = 16
)

// tokenKind is what the shape of a token says it is.
type tokenKind int

const (
	kindJWT tokenKind = iota
	kindOpaque
)

// classify applies the size and alphabet limits and tells a compact JWS
// (three segments) from an opaque token. It parses nothing.
func classify(raw string) (tokenKind, *Error) {
	switch {
	case raw == "":
		return 0, fail(CodeTokenMissing, "no access token")
	case len(raw) > MaxTokenSize:
		return 0, fail(CodeTokenMalformed, fmt.Sprintf("token longer than %d bytes", MaxTokenSize))
	}
	for i := 0; i < len(raw); i++ {
		if !jose.IsCompactChar(raw[i]) {
			return 0, fail(CodeTokenMalformed, "token contains characters outside [A-Za-z0-9_.-]")
		}
	}
	switch strings.Count(raw, ".") {
	case 2:
		return kindJWT, nil
	case 4:
		return 0, fail(CodeTokenMalformed, "encrypted tokens (JWE) are not accepted")
	}
	if raw[0] == '.' || raw[len(raw)-1] == '.' || strings.Contains(raw, "..") {
		return 0, fail(CodeTokenMalformed, "token has an empty segment")
	}
	return kindOpaque, nil
}

// compactJWS is a JWT split and decoded, nothing verified yet.
type compactJWS struct {
	header    ast.Object
	payload   ast.Object
	signature []byte
}

// parseCompact decodes the three segments of a JWT (already classified)
// and parses header and payload strictly.
func parseCompact(raw string) (*compactJWS, *Error) {
	h, rest, _ := strings.Cut(raw, ".")
	p, s, _ := strings.Cut(rest, ".")
	if h == "" {
		return nil, fail(CodeTokenMalformed, "JWT header is empty")
	}
	header, err := decodeObject(h)
	if err != nil {
		return nil, failWrap(CodeTokenMalformed, "JWT header is not a base64url JSON object", err)
	}
	payload, err := decodeObject(p)
	if err != nil {
		return nil, failWrap(CodeTokenMalformed, "JWT payload is not a base64url JSON object", err)
	}
	sig, err := jose.B64.DecodeString(s)
	if err != nil {
		return nil, failWrap(CodeTokenMalformed, "JWT signature is not base64url", err)
	}
	return &compactJWS{header: header, payload: payload, signature: sig}, nil
}

func decodeObject(segment string) (ast.Object, error) {
	data, err := jose.B64.DecodeString(segment)
	if err != nil {
		return nil, fmt.Errorf("decoding base64url: %w", err)
	}
	return parseObject(data)
}

// parseObject parses JSON that must be an object.
func parseObject(data []byte) (ast.Object, error) {
	v, err := jsonast.Parse(data, maxJSONDepth)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("%w: top level is not an object", jsonast.ErrSyntax)
	}
	return obj, nil
}
