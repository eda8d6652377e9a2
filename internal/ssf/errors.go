package ssf

import (
	"errors"
	"fmt"
)

// The error codes of RFC 8935 §2.4 (also used in RFC 8936 setErrs).
const (
	// CodeInvalidRequest: the SET cannot be parsed, or its event payload
	// does not conform to the event's definition.
	CodeInvalidRequest = "invalid_request"
	// CodeInvalidKey: the signing key is unknown or unacceptable.
	CodeInvalidKey = "invalid_key"
	// CodeInvalidIssuer: the SET issuer is not a configured transmitter.
	CodeInvalidIssuer = "invalid_issuer"
	// CodeInvalidAudience: the SET audience is not this receiver.
	CodeInvalidAudience = "invalid_audience"
	// CodeAuthenticationFailed: the SET's signature does not authenticate
	// the transmitter.
	CodeAuthenticationFailed = "authentication_failed"
	// CodeAccessDenied: the transmitter may not send this SET (it names a
	// token issuer the transmitter does not speak for).
	CodeAccessDenied = "access_denied"
)

// Error is a refused SET. Code and Description may be sent to the
// transmitter: Description is one of a fixed set of sentences and never
// repeats the SET. The cause, for the log only, is reachable with Unwrap.
type Error struct {
	// Code is one of the RFC 8935 error codes (Code* constants).
	Code string
	// Description says what was wrong, safe to send back.
	Description string
	// cause is the underlying error, for the log.
	cause error
}

func (e *Error) Error() string {
	if e.cause != nil {
		return fmt.Sprintf("ssf: %s: %s: %v", e.Code, e.Description, e.cause)
	}
	return fmt.Sprintf("ssf: %s: %s", e.Code, e.Description)
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.cause }

// refuse returns a refusal with a fixed description.
func refuse(code, description string) *Error {
	return &Error{Code: code, Description: description}
}

// refuseErr returns a refusal that keeps cause for the log.
func refuseErr(code, description string, cause error) *Error {
	return &Error{Code: code, Description: description, cause: cause}
}

// ErrStore wraps a failure to record a revocation. The SET was valid; the
// transmitter should deliver it again later.
var ErrStore = errors.New("ssf: revocation store failed")

// AsError returns the refusal inside err, if there is one.
func AsError(err error) (*Error, bool) {
	var e *Error
	ok := errors.As(err, &e)
	return e, ok
}
