package decision

import (
	"net/url"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/token"
)

func TestReuseKeyOfAMessage(t *testing.T) {
	base := func() *Request {
		req, err := NewMessage(RawMessage{Broker: "nats", Operation: "publish", Destination: "orders.created", VHost: "/", Token: "t1", RemoteIP: "203.0.113.7"})
		if err != nil {
			t.Fatal(err)
		}
		return req
	}
	tok := &token.Token{Hash: "h1"}
	reuse := policy.Reuse{Version: 1, Allowed: true, AllHeaders: true}
	tests := []struct {
		name   string
		change func(*Request)
		same   bool
	}{
		{"ok/the same message", func(*Request) {}, true},
		{"fail/broker", func(r *Request) { r.Message.Broker = "rabbitmq" }, false},
		{"fail/operation", func(r *Request) { r.Message.Operation = "subscribe" }, false},
		{"fail/destination", func(r *Request) { r.Message.Destination = "orders.deleted" }, false},
		{"fail/vhost", func(r *Request) { r.Message.VHost = "/b" }, false},
		{"fail/destination and vhost shifted", func(r *Request) { r.Message.Destination, r.Message.VHost = "orders.created/", "" }, false},
		{"fail/an HTTP request with no URL", func(r *Request) { r.Message = nil }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r1, r2 := base(), base()
			m := *r2.Message
			r2.Message = &m
			tt.change(r2)
			cred := credential{scheme: "bearer"}
			if same := keyOf(r1, cred, tok, proofResult{}, reuse) == keyOf(r2, cred, tok, proofResult{}, reuse); same != tt.same {
				t.Errorf("same key = %v, want %v", same, tt.same)
			}
		})
	}
	// An HTTP request's key is not a message's either.
	u, _ := url.Parse("https://api.example.com/")
	if keyOf(&Request{Method: "GET", URL: u}, credential{}, tok, proofResult{}, reuse) == keyOf(base(), credential{}, tok, proofResult{}, reuse) {
		t.Error("an HTTP request and a message share a key")
	}
}

// TestMessageDecisionInput: a message reaches the policy as input.message,
// never with an input.request, and a token verified earlier is decided on
// after its times are checked again.
func TestMessageDecisionInput(t *testing.T) {
	rig := newExplainRig(t)
	raw := rig.mint(t, nil)
	tok, err := rig.decider.tokens.Verify(t.Context(), raw)
	if err != nil {
		t.Fatal(err)
	}
	expired := *tok
	expired.ExpiresAt = time.Now().Add(-time.Hour)
	tests := []struct {
		name      string
		raw       RawMessage
		wantValid bool
		wantError string
	}{
		{"ok/the token given", RawMessage{Broker: "nats", Operation: "publish", Destination: "orders.created", Token: raw, RemoteIP: "198.51.100.7"}, true, ""},
		{"ok/the token in an authorization header", RawMessage{Broker: "rabbitmq", Operation: "connect", VHost: "/",
			Headers: map[string][]string{"authorization": {"Bearer " + raw}}}, true, ""},
		{"ok/a token verified earlier", RawMessage{Broker: "rabbitmq", Operation: "publish", Destination: "orders", Verified: tok}, true, ""},
		{"fail/a token verified earlier that has expired since", RawMessage{Broker: "rabbitmq", Operation: "publish", Destination: "orders", Verified: &expired}, false, token.CodeExpired},
		{"fail/no token", RawMessage{Broker: "nats", Operation: "connect"}, false, token.CodeTokenMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := NewMessage(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			d, err := rig.decider.Decide(t.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			in, ok := d.Input.(ast.Object)
			if !ok {
				t.Fatalf("input = %v", d.Input)
			}
			if in.Get(ast.StringTerm("request")) != nil {
				t.Error("a message's input has a request")
			}
			msg, _ := in.Get(ast.StringTerm("message")).Value.(ast.Object)
			if msg == nil || msg.Get(ast.StringTerm("broker")).Value.Compare(ast.String(tt.raw.Broker)) != 0 ||
				msg.Get(ast.StringTerm("operation")).Value.Compare(ast.String(tt.raw.Operation)) != 0 {
				t.Fatalf("input.message = %v", msg)
			}
			tk := in.Get(ast.StringTerm("token")).Value.(ast.Object)
			if valid := tk.Get(ast.StringTerm("valid")).Value.Compare(ast.Boolean(true)) == 0; valid != tt.wantValid {
				t.Errorf("input.token.valid = %v, want %v (%v)", valid, tt.wantValid, tk)
			}
			if tt.wantError != "" {
				if code := tk.Get(ast.StringTerm("error")); code == nil || code.Value.(ast.Object).Get(ast.StringTerm("code")).Value.Compare(ast.String(tt.wantError)) != 0 {
					t.Errorf("input.token.error = %v, want %s", code, tt.wantError)
				}
				if d.Allow {
					t.Error("allowed")
				}
			}
			if tt.wantValid && d.TokenHash != tok.Hash {
				t.Errorf("decision token hash = %q, want the token's", d.TokenHash)
			}
		})
	}
}

// TestAllowedMessageLeavesNoSighting: an allowed message records no
// fingerprint (it has no user agent, and would make the HTTP client's next
// request look like a replay), while the same token's allowed HTTP request
// does.
func TestAllowedMessageLeavesNoSighting(t *testing.T) {
	rig := newExplainRig(t)
	raw := rig.mint(t, map[string]any{"scope": "accounts:read orders:write"})
	req, err := NewMessage(RawMessage{Broker: "nats", Operation: "connect", Token: raw, RemoteIP: "198.51.100.7"})
	if err != nil {
		t.Fatal(err)
	}
	d, err := rig.decider.Decide(t.Context(), req)
	if err != nil || !d.Allow {
		t.Fatalf("connect: allow = %v, reasons %v, err %v", d.Allow, d.Reasons, err)
	}
	rig.fileSum(t) // the sightings queued are written
	if _, seen, err := rig.st.LastSeen(t.Context(), d.TokenHash); err != nil || seen {
		t.Fatalf("after an allowed message: seen = %v, err %v; want no sighting", seen, err)
	}
	d, err = rig.decider.Decide(t.Context(), request(t, RawRequest{Method: "GET", URL: rigURL, RemoteIP: "198.51.100.7",
		Headers: map[string][]string{"authorization": {"Bearer " + raw}, "user-agent": {"app/1"}}}))
	if err != nil || !d.Allow {
		t.Fatalf("request: allow = %v, reasons %v, err %v", d.Allow, d.Reasons, err)
	}
	rig.fileSum(t)
	if _, seen, err := rig.st.LastSeen(t.Context(), d.TokenHash); err != nil || !seen {
		t.Fatalf("after an allowed request: seen = %v, err %v; want its sighting", seen, err)
	}
}
