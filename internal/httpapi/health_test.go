package httpapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
)

// /readyz is open to everyone: its 503 names the checks that failed and
// nothing of why (paths, errors); /v1/status, behind the ops credential,
// says why under readiness.
func TestReadyzNamesFailedChecksOnly(t *testing.T) {
	const secret = "store file /var/lib/pdp/data/pdp.db was removed: open /var/lib/pdp/data/pdp.db: no such file"
	for _, tt := range []struct {
		name   string
		failed map[string]error
		want   []string
	}{
		{"ok/every check passes", nil, nil},
		{"fail/the store", map[string]error{"store": errors.New(secret)}, []string{"store"}},
		{"fail/keys and replication", map[string]error{"keys": errors.New("issuer https://as.example.com: dial tcp 10.0.0.7:443: connection refused"),
			"replication": errors.New("the local view has not been able to follow for 7s")}, []string{"keys", "replication"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var checks []Check
			for _, name := range []string{"policy", "keys", "store", "replication"} {
				err := tt.failed[name]
				checks = append(checks, Check{Name: name, Ready: func() error { return err }})
			}
			r := chi.NewRouter()
			opts := Options{Checks: checks, Status: func() any { return map[string]any{} }, Logger: slog.New(slog.DiscardHandler)}
			mountProbes(r, opts)
			mountOps(r, opts, func(h http.Handler) http.Handler { return h })

			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			if tt.want == nil {
				if rec.Code != http.StatusOK {
					t.Fatalf("/readyz = %d %s, want 200", rec.Code, rec.Body)
				}
			} else {
				var p struct {
					Type   string   `json:"type"`
					Checks []string `json:"checks"`
				}
				if rec.Code != http.StatusServiceUnavailable || json.Unmarshal(rec.Body.Bytes(), &p) != nil ||
					p.Type != TypeNotReady || !slices.Equal(p.Checks, tt.want) {
					t.Fatalf("/readyz = %d %s, want 503 naming %v", rec.Code, rec.Body, tt.want)
				}
				for _, err := range tt.failed {
					for _, leak := range []string{err.Error(), "/var/lib", "10.0.0.7", "dial tcp"} {
						if strings.Contains(rec.Body.String(), leak) && strings.Contains(err.Error(), leak) {
							t.Errorf("/readyz tells %q: %s", leak, rec.Body)
						}
					}
				}
			}

			rec = httptest.NewRecorder()
			r.ServeHTTP(rec, httptest.NewRequest("GET", "/v1/status", nil))
			var st struct {
				Readiness Readiness `json:"readiness"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || len(st.Readiness.Checks) != 4 || st.Readiness.Ready != (tt.want == nil) {
				t.Fatalf("/v1/status readiness = %+v (%v), %s", st.Readiness, err, rec.Body)
			}
			for _, c := range st.Readiness.Checks {
				err := tt.failed[c.Check]
				if c.Ready != (err == nil) || (err != nil && c.Detail != err.Error()) {
					t.Errorf("/v1/status readiness %+v, want the cause %v", c, err)
				}
			}
		})
	}
}
