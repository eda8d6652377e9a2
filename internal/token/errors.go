package token

// Reason codes: the stable values of Error.Code.
const (
	// CodeTokenMissing: no token was presented.
	CodeTokenMissing = "token_missing"
	// CodeTokenMalformed: the token breaks a size, shape, encoding or JSON
	// rule, or a claim or header has the wrong type.
	CodeTokenMalformed = "token_malformed"
	// CodeSignatureInvalid: no key of the issuer verifies the signature.
	CodeSignatureInvalid = "token_signature_invalid"
	// CodeAlgNotAllowed: the header alg is not on the issuer's allow-list.
	CodeAlgNotAllowed = "token_alg_not_allowed"
	// CodeTypeInvalid: the token is another kind of JWT (ID token, DPoP
	// proof, SET, refresh or logout token) or lacks the required typ.
	CodeTypeInvalid = "token_type_invalid"
	// CodeIssuerUntrusted: iss names no configured issuer.
	CodeIssuerUntrusted = "issuer_untrusted"
	// CodeAudienceMismatch: aud holds none of the issuer's audiences.
	CodeAudienceMismatch = "audience_mismatch"
	// CodeExpired: exp has passed (beyond the skew).
	CodeExpired = "token_expired"
	// CodeNotYetValid: nbf or iat lies in the future (beyond the skew).
	CodeNotYetValid = "token_not_yet_valid"
	// CodeClaimsMissing: a required claim (iss, exp, iat) is absent.
	CodeClaimsMissing = "token_claims_missing"
	// CodeInactive: the introspection endpoint answered active=false.
	CodeInactive = "token_inactive"
	// CodeIntrospectionFailed: introspection did not give a usable answer.
	CodeIntrospectionFailed = "introspection_failed"
)

// Error is the error Verify returns. Code is one of the Code* constants,
// Message is safe to show to the client (it never contains the token or a
// secret), Err is the underlying cause for the log.
type Error struct {
	Code    string
	Message string
	Err     error
}

// Error returns "code: message", followed by the cause when there is one.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Code + ": " + e.Message + ": " + e.Err.Error()
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

func fail(code, message string) *Error {
	return &Error{Code: code, Message: message}
}

func failWrap(code, message string, err error) *Error {
	return &Error{Code: code, Message: message, Err: err}
}
