package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
)

// newExplainTestbed is the guardrail testbed with the admin API on.
func newExplainTestbed(t *testing.T) *testbed {
	t.Helper()
	credFile := filepath.Join(t.TempDir(), "admin")
	if err := os.WriteFile(credFile, []byte(adminCredential+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return newGuardrailTestbed(t, func(c *config.Config) { c.Admin.TokenFile = credFile })
}

// explainEntry is one entry of an explanation.
type explainEntry struct {
	Guardrail, Code, Mode, Outcome, Rule string
	Values                               map[string]any
}

func (tb *testbed) explain(t *testing.T, tok string) (decideResponse, []explainEntry, []map[string]string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"request": map[string]any{
		"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": bearer(tok), "remote_ip": "203.0.113.7",
	}})
	status, out := tb.admin(t, "POST", "/v1/admin/explain", string(body))
	if status != 200 {
		t.Fatalf("POST /v1/admin/explain = %d %v", status, out)
	}
	raw, _ := json.Marshal(out)
	var d decideResponse
	var x struct {
		Explanation []explainEntry      `json:"explanation"`
		Unwritten   []map[string]string `json:"unwritten"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &x); err != nil {
		t.Fatal(err)
	}
	return d, x.Explanation, x.Unwritten
}

func (tb *testbed) storeCounts(t *testing.T) (fingerprints, pending float64) {
	t.Helper()
	status, out := tb.call(t, "GET", "/v1/status", "", "", "")
	if status != 200 {
		t.Fatalf("GET /v1/status = %d", status)
	}
	st, _ := out["store"].(map[string]any)
	return st["fingerprints"].(float64), st["pending_sightings"].(float64)
}

func lifetimeEntry(xs []explainEntry) *explainEntry {
	for i := range xs {
		if xs[i].Guardrail == "lifetime" {
			return &xs[i]
		}
	}
	return nil
}

// Issue 17: explain of an over-long token names the lifetime guardrail
// with both values and leaves no sighting behind.
func TestExplainOverLongTokenNamesTheLifetimeAndLeavesNoSighting(t *testing.T) {
	tb := newExplainTestbed(t)
	now := time.Now()

	t.Run("fail/an over-long token is denied by the lifetime guardrail, both values named", func(t *testing.T) {
		d, xs, _ := tb.explain(t, tb.mint(t, "ES256", map[string]any{"iat": now.Unix(), "exp": now.Add(2 * time.Hour).Unix()}))
		check(t, d, want{false, 401, "lifetime_exceeded"})
		e := lifetimeEntry(xs)
		if e == nil || e.Code != "lifetime_exceeded" || e.Outcome != "deny" || e.Mode != "enforce" ||
			e.Values["lifetime_s"] != 7200.0 || e.Values["max_lifetime_s"] != 3600.0 || e.Rule == "" {
			t.Errorf("lifetime explained as %+v", e)
		}
	})

	// A monitored client's over-long token is allowed: /v1/decide would
	// record its sighting, explain must not.
	monitored := tb.mint(t, "ES256", map[string]any{"client_id": "monitored-lifetime", "iat": now.Unix(), "exp": now.Add(2 * time.Hour).Unix()})
	t.Run("ok/in monitor mode a warning, and the sighting left undone", func(t *testing.T) {
		d, xs, unwritten := tb.explain(t, monitored)
		check(t, d, want{true, 200, ""})
		if e := lifetimeEntry(xs); e == nil || e.Outcome != "warn" || e.Mode != "monitor" || e.Values["lifetime_s"] != 7200.0 {
			t.Errorf("lifetime explained as %+v", e)
		}
		found := false
		for _, u := range unwritten {
			found = found || u["write"] == "sighting"
		}
		if !found {
			t.Errorf("unwritten = %v, want the sighting", unwritten)
		}
		time.Sleep(200 * time.Millisecond) // a sighting's write window
		if fp, pending := tb.storeCounts(t); fp != 0 || pending != 0 {
			t.Errorf("after explain: %v fingerprints, %v pending sightings; want none", fp, pending)
		}
	})

	t.Run("ok/the same request decided does leave its sighting", func(t *testing.T) {
		check(t, tb.decide(t, bearer(monitored), map[string]any{"remote_ip": "203.0.113.7"}), want{true, 200, ""})
		for range 100 {
			if fp, pending := tb.storeCounts(t); fp+pending > 0 {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Error("no sighting after the decision: the check above proves nothing")
	})
}
