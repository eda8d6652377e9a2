package devissuer

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Token endpoint limits.
const (
	// MaxTTL caps the ttl parameter of the token endpoint.
	MaxTTL = 24 * time.Hour
	// maxParamLength bounds each parameter value.
	maxParamLength = 1024
	// maxFormSize bounds a POST body.
	maxFormSize = 64 << 10
)

// tokenParams are the parameters TokenHandler understands, each mapped to
// the claim it sets; ttl sets exp.
var tokenParams = map[string]string{
	"sub":       "sub",
	"client_id": "client_id",
	"scope":     "scope",
	"aud":       "aud",
	"gty":       "gty",
	"ttl":       "",
}

// tokenResponse is the body of a successful token request (RFC 6749 §5.1).
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
}

// TokenHandler is the dev mode's token endpoint. It answers GET or POST
// (query or form) with optional parameters sub, client_id, scope, aud
// (repeatable: several values make an array), gty and ttl (a Go duration,
// capped at MaxTTL; default DefaultTTL). The claims start from defaults,
// which the parameters override. The answer is
// {"access_token","token_type":"Bearer","expires_in"}; unknown, repeated
// or invalid parameters get a 400 application/problem+json.
func (i *Issuer) TokenHandler(defaults map[string]any) http.Handler {
	defaults = maps.Clone(defaults)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			w.Header().Set("Allow", "GET, POST")
			writeProblem(w, http.StatusMethodNotAllowed, "use GET or POST")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxFormSize)
		if err := r.ParseForm(); err != nil {
			writeProblem(w, http.StatusBadRequest, "the request parameters cannot be parsed")
			return
		}
		claims, ttl, err := tokenClaims(defaults, r.Form)
		if err != nil {
			writeProblem(w, http.StatusBadRequest, err.Error())
			return
		}
		now := time.Now()
		claims["iat"] = now.Unix()
		claims["exp"] = now.Add(ttl).Unix()
		tok, err := i.Mint(claims)
		if err != nil {
			writeProblem(w, http.StatusInternalServerError, "the token could not be signed")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_ = json.NewEncoder(w).Encode(tokenResponse{AccessToken: tok, TokenType: "Bearer", ExpiresIn: int64(ttl / time.Second)})
	})
}

// tokenClaims turns the request parameters into claims and a lifetime.
func tokenClaims(defaults map[string]any, params map[string][]string) (map[string]any, time.Duration, error) {
	claims := maps.Clone(defaults)
	if claims == nil {
		claims = map[string]any{}
	}
	ttl := DefaultTTL
	for name, values := range params {
		claim, known := tokenParams[name]
		switch {
		case !known:
			return nil, 0, fmt.Errorf("unknown parameter %q (known: sub, client_id, scope, aud, gty, ttl)", truncate(name))
		case len(values) > 1 && name != "aud":
			return nil, 0, fmt.Errorf("parameter %q given more than once", name)
		}
		for _, v := range values {
			if v == "" || len(v) > maxParamLength || !utf8.ValidString(v) || strings.ContainsFunc(v, isControl) {
				return nil, 0, fmt.Errorf("parameter %q must be 1 to %d printable characters", name, maxParamLength)
			}
		}
		switch name {
		case "ttl":
			d, err := time.ParseDuration(values[0])
			if err != nil || d < time.Second {
				return nil, 0, fmt.Errorf("parameter \"ttl\" must be a Go duration of at least 1s, like 10m")
			}
			ttl = min(d, MaxTTL)
		case "aud":
			if len(values) == 1 {
				claims[claim] = values[0]
			} else {
				claims[claim] = values
			}
		default:
			claims[claim] = values[0]
		}
	}
	return claims, ttl, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// problem is an RFC 9457 problem document.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{
		Type:   "about:blank",
		Title:  http.StatusText(status),
		Status: status,
		Detail: detail,
	})
}
