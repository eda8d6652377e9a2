package dpop

// Reason codes: the stable values of Error.Code.
const (
	// CodeProofInvalid: the proof is missing, malformed, badly signed, or
	// does not match the request (RFC 9449 error "invalid_dpop_proof").
	CodeProofInvalid = "dpop_proof_invalid"
	// CodeReplayed: a proof with the same key and jti was used before.
	CodeReplayed = "dpop_replayed"
	// CodeNonceRequired: server nonces are on and the proof carries no
	// nonce, or one that is stale or was not issued by this service
	// (RFC 9449 error "use_dpop_nonce"; answer with a fresh DPoP-Nonce).
	CodeNonceRequired = "dpop_nonce_required"
)

// Error is the error Verify returns for a proof it refuses. Code is one of
// the Code* constants, Message is safe to show to the client (it never
// contains the proof, the access token or a secret), and Err is the
// underlying cause, for the log.
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

func invalid(message string) *Error {
	return &Error{Code: CodeProofInvalid, Message: message}
}

func invalidWrap(message string, err error) *Error {
	return &Error{Code: CodeProofInvalid, Message: message, Err: err}
}
