package httpapi

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tokenguard/pdp/internal/store"
)

// unavailableStore fails every call as the shared store does when Redis
// cannot be reached.
type unavailableStore struct{}

func (unavailableStore) PutRevocation(context.Context, store.Revocation) (store.Revocation, error) {
	return store.Revocation{}, fmt.Errorf("store: put revocations: %w", store.ErrUnavailable)
}
func (unavailableStore) GetRevocation(context.Context, string) (store.Revocation, error) {
	return store.Revocation{}, fmt.Errorf("store: get: %w", store.ErrUnavailable)
}
func (unavailableStore) DeleteRevocation(context.Context, string) error {
	return fmt.Errorf("store: delete revocation: %w", store.ErrUnavailable)
}
func (unavailableStore) ListRevocations(context.Context, store.RevocationFilter) ([]store.Revocation, error) {
	return nil, fmt.Errorf("store: list: %w", store.ErrUnavailable)
}

func TestAdminAnswers503WhenTheSharedStateIsUnavailable(t *testing.T) {
	r := chi.NewRouter()
	mountAdmin(r, Admin{Credential: "c", Store: unavailableStore{}, RevocationTTL: time.Hour}, slog.New(slog.DiscardHandler), nil)
	for name, tt := range map[string]struct{ method, path, body string }{
		"fail/revoke":  {"POST", "/v1/admin/revocations", `{"kind":"subject","iss":"https://as.example.com","value":"carol"}`},
		"fail/delete":  {"DELETE", "/v1/admin/revocations/r1", ""},
		"fail/listing": {"GET", "/v1/admin/revocations", ""},
	} {
		t.Run(name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer c")
			req.Header.Set("Content-Type", "application/json")
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)
			if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "repeat the request") {
				t.Fatalf("%d %s", rec.Code, rec.Body)
			}
		})
	}
}
