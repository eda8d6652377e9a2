package httpapi

import (
	"log/slog"
	"net/http"
	"time"
)

// Limits every HTTP listener of the decision point applies (see
// NewServer).
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 10 * time.Second
	IdleTimeout       = 2 * time.Minute
	MaxHeaderBytes    = 64 << 10
)

// NewServer returns the http.Server every listener of the process serves
// with: the API's, plain or TLS, and any other (operations, metrics). It
// bounds how long a client may take and how large its header may be, and
// wraps h in Framing.
func NewServer(h http.Handler, logger *slog.Logger) *http.Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &http.Server{
		Handler:           Framing(h),
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
}

// Framing refuses requests whose HTTP/1 framing two parsers could read
// differently (RFC 9112 §6.1), the ground of request smuggling:
//
//   - A request with a Transfer-Encoding gets 400 and the connection is
//     closed after the answer, its body unread: whatever follows on the
//     connection (a smuggled second request) is never read. Go's server
//     drops Content-Length when Transfer-Encoding is chunked, so a handler
//     cannot tell chunked alone from chunked with Content-Length; refusing
//     every chunked body closes both, and RFC 9112 §6.3 lets a server
//     require Content-Length. Every client of the decision point sends
//     bodies with a length.
//   - An HTTP/1.0 request is answered with the connection closed: Go
//     ignores (and hides) a Transfer-Encoding on HTTP/1.0, which RFC 9112
//     §6.1 says to treat as faulty framing and close after.
//
// Go's server itself refuses, and closes, any other Transfer-Encoding than
// a single "chunked" (501), several differing Content-Length values (400)
// and a malformed one (400), before a handler runs.
func Framing(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 1 && r.ProtoMinor == 0 {
			w.Header().Set("Connection", "close")
		}
		if len(r.TransferEncoding) > 0 {
			w.Header().Set("Connection", "close")
			writeProblem(w, Problem{Type: TypeInvalidRequest, Title: "Bad Request", Status: http.StatusBadRequest,
				Detail: "Transfer-Encoding is not accepted: send the body with a Content-Length"})
			return
		}
		next.ServeHTTP(w, r)
	})
}
