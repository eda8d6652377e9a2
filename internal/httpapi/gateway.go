package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
)

// GatewayAuth admits only gateways to the decision endpoints: a shared
// credential in the X-Tokenguard-Gateway header (Authorization belongs to
// the request being decided), or a client certificate verified against the
// configured CA (the TLS listener verifies it; here its presence counts).
// The zero value admits everyone.
type GatewayAuth struct {
	Credential string
	// ClientCA reports that the listener verifies client certificates
	// against a gateway CA.
	ClientCA bool
}

func (g GatewayAuth) enabled() bool { return g.Credential != "" || g.ClientCA }

// middleware refuses callers that are not gateways with 401 problem+json.
func (g GatewayAuth) middleware(next http.Handler) http.Handler {
	if !g.enabled() {
		return next
	}
	digest := sha256.Sum256([]byte(g.Credential))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if g.ClientCA && r.TLS != nil && len(r.TLS.VerifiedChains) > 0 {
			next.ServeHTTP(w, r)
			return
		}
		if g.Credential != "" {
			given := sha256.Sum256([]byte(r.Header.Get(GatewayHeader)))
			if subtle.ConstantTimeCompare(given[:], digest[:]) == 1 {
				next.ServeHTTP(w, r)
				return
			}
		}
		writeProblem(w, Problem{Type: TypeUnauthorized, Title: "Unauthorized", Status: http.StatusUnauthorized,
			Detail: "only authenticated gateways may ask for decisions"})
	})
}
