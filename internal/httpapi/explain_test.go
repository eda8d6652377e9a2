package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/decisionlog"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
)

// fakeExplainer explains every request as a lifetime deny; the
// explanations themselves are tested with the real policy (decision,
// cmd/pdp).
type fakeExplainer struct{ err error }

func (f fakeExplainer) Explain(context.Context, *decision.Request) (*decision.Explained, error) {
	d := &decision.Decision{Allow: false, Status: 401, Reasons: []policy.Reason{{Code: "lifetime_exceeded", Message: "too long"}}}
	if f.err != nil {
		return &decision.Explained{Decision: d}, f.err
	}
	return &decision.Explained{Decision: d,
		Explanation: []policy.Explanation{{Guardrail: "lifetime", Code: "lifetime_exceeded", Mode: "enforce", Outcome: "deny",
			Rule: "lib/lifetime.rego:80", Values: map[string]any{"lifetime_s": 7200, "max_lifetime_s": 3600}}},
		Unwritten: []decision.Unwritten{{Write: decision.WriteSighting, Detail: "not recorded"}},
	}, nil
}

type logged struct {
	mu      sync.Mutex
	entries []decisionlog.Entry
}

func (l *logged) Log(_ context.Context, e decisionlog.Entry) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.entries = append(l.entries, e)
}

func TestAdminExplain(t *testing.T) {
	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tests := []struct {
		name        string
		explainer   fakeExplainer
		auth, ctype string
		body        string
		status      int
		check       func(t *testing.T, body map[string]any, logs []decisionlog.Entry)
	}{
		{name: "ok/the decision with its explanation and the writes left undone", auth: "Bearer c", ctype: "application/json",
			body: `{"request": {"method": "GET", "url": "https://api.example.com/x"}}`, status: 200,
			check: func(t *testing.T, body map[string]any, logs []decisionlog.Entry) {
				xs, _ := body["explanation"].([]any)
				un, _ := body["unwritten"].([]any)
				if body["allow"] != false || body["status"] != 401.0 || body["decision_id"] == "" || len(xs) != 1 || len(un) != 1 {
					t.Errorf("body = %v", body)
				}
				if x, _ := xs[0].(map[string]any); x["rule"] != "lib/lifetime.rego:80" || x["outcome"] != "deny" {
					t.Errorf("explanation = %v", xs[0])
				}
				if len(logs) != 1 || !logs[0].Decision.Explain || logs[0].Decision.ID != body["decision_id"] {
					t.Errorf("decision log = %+v, want one entry marked as an explanation", logs)
				}
			}},
		{name: "fail/without the admin credential", ctype: "application/json", body: `{}`, status: 401},
		{name: "fail/with the wrong credential", auth: "Bearer d", ctype: "application/json", body: `{}`, status: 401},
		{name: "fail/not JSON", auth: "Bearer c", ctype: "text/plain", body: `{}`, status: 415},
		{name: "fail/over the decide body limit", auth: "Bearer c", ctype: "application/json",
			body: `{"request": {"method": "GET", "url": "https://a/"}, "context": {"x": "` + strings.Repeat("a", MaxDecideBody) + `"}}`, status: 413},
		{name: "fail/an unknown field, as decide", auth: "Bearer c", ctype: "application/json", body: `{"methods": "GET"}`, status: 400},
		{name: "fail/a policy error is a policy-error problem, logged", explainer: fakeExplainer{err: errors.New("boom")},
			auth: "Bearer c", ctype: "application/json", body: `{"request": {"method": "GET", "url": "https://api.example.com/x"}}`, status: 500,
			check: func(t *testing.T, body map[string]any, logs []decisionlog.Entry) {
				if body["type"] != TypePolicyError || strings.Contains(body["detail"].(string), "boom") {
					t.Errorf("problem = %v", body)
				}
				if len(logs) != 1 || logs[0].Err == nil || !logs[0].Decision.Explain {
					t.Errorf("decision log = %+v", logs)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logged{}
			r := chi.NewRouter()
			mountAdmin(r, Admin{Credential: "c", Store: st, Explainer: tt.explainer}, slog.New(slog.DiscardHandler), logs)
			req := httptest.NewRequest(http.MethodPost, "/v1/admin/explain", strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.ctype)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			r.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tt.status, rec.Body)
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				logs.mu.Lock()
				defer logs.mu.Unlock()
				tt.check(t, body, logs.entries)
			}
		})
	}
}

func TestAdminExplainIsNotServedWithoutAnExplainer(t *testing.T) {
	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h := New(Options{Decider: &recorder{}, Admin: Admin{Credential: "c", Store: st}})
	req := httptest.NewRequest(http.MethodPost, "/v1/admin/explain", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer c")
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusNotFound && rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("status %d, want 404 or 405", rec.Code)
	}
}
