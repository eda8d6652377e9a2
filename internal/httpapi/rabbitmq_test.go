package httpapi

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/token"
)

const testRabbitCred = "rabbitmq:0123456789abcdef0123456789abcdef"

func TestParseRabbitMQCredential(t *testing.T) {
	for name, tc := range map[string]struct {
		cred string
		ok   bool
	}{
		"ok/unreserved user and long password":    {testRabbitCred, true},
		"ok/every unreserved character":           {"rabbit-mq_1.x~:" + strings.Repeat("aZ09-._~", 4), true},
		"fail/no colon":                           {"rabbitmq0123456789abcdef0123456789abcdef", false},
		"fail/empty user":                         {":0123456789abcdef0123456789abcdef", false},
		"fail/short password":                     {"rabbitmq:0123456789abcdef", false},
		"fail/password needs escaping in a URL":   {"rabbitmq:0123456789abcdef0123456789abcdef@", false},
		"fail/colon in the password":              {"rabbitmq:0123456789abcdef:0123456789abcdef", false},
		"fail/space in the user":                  {"rabbit mq:0123456789abcdef0123456789abcdef", false},
		"fail/percent-encoded, ambiguous in URLs": {"rabbitmq:%410123456789abcdef0123456789abcdef", false},
	} {
		t.Run(name, func(t *testing.T) {
			if err := ParseRabbitMQCredential(tc.cred); (err == nil) != tc.ok {
				t.Fatalf("ParseRabbitMQCredential(%q) = %v, want ok=%v", tc.cred, err, tc.ok)
			}
		})
	}
}

// allowAll decides every message allowed, with the token hash of a raw
// token; these tests are about the HTTP side.
type allowAll struct{ asked []*decision.Request }

func (a *allowAll) Decide(_ context.Context, req *decision.Request) (*decision.Decision, error) {
	a.asked = append(a.asked, req)
	d := &decision.Decision{ID: decision.NewID(), Allow: true, Status: 200}
	if v := req.Headers["authorization"]; len(v) == 1 {
		d.TokenHash = token.HashToken(strings.TrimPrefix(v[0], "Bearer "))
	}
	return d, nil
}

// fakeTokens verifies any token "sub.<subject>".
type fakeTokens struct{}

func (fakeTokens) Verify(_ context.Context, raw string) (*token.Token, error) {
	sub, ok := strings.CutPrefix(raw, "sub.")
	if !ok {
		return nil, &token.Error{Code: token.CodeTokenMalformed, Message: "not a token"}
	}
	return &token.Token{Hash: token.HashToken(raw), Subject: sub, ExpiresAt: time.Now().Add(time.Hour)}, nil
}

func rabbitHandler(d Decider) http.Handler {
	r := chi.NewRouter()
	mountRabbitMQ(r, RabbitMQ{Credential: testRabbitCred, Tokens: fakeTokens{}, MaxTokens: 10, MaxTokensPerSubject: 2, MaxTokenAge: time.Hour},
		d, slog.New(slog.DiscardHandler), observer{})
	return r
}

func rabbitRequest(method, path, body string, auth ...string) *http.Request {
	var r *http.Request
	if method == http.MethodGet {
		r = httptest.NewRequest(method, "/v1/rabbitmq/"+path+"?"+body, nil)
	} else {
		r = httptest.NewRequest(method, "/v1/rabbitmq/"+path, strings.NewReader(body))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for _, a := range auth {
		r.Header.Add("Authorization", a)
	}
	return r
}

func basicOf(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }

func TestRabbitMQRefusesAnyoneButTheBroker(t *testing.T) {
	d := &allowAll{}
	h := rabbitHandler(d)
	body := "username=alice&password=sub.alice"
	for name, auth := range map[string][]string{
		"fail/no credential":                 nil,
		"fail/wrong password":                {basicOf("rabbitmq:0123456789abcdef0123456789abcdeX")},
		"fail/wrong user":                    {basicOf("rabbitmx:0123456789abcdef0123456789abcdef")},
		"fail/password alone":                {basicOf("0123456789abcdef0123456789abcdef")},
		"fail/bearer scheme":                 {"Bearer " + base64.StdEncoding.EncodeToString([]byte(testRabbitCred))},
		"fail/not base64":                    {"Basic ***"},
		"fail/two Authorization headers":     {basicOf(testRabbitCred), basicOf(testRabbitCred)},
		"fail/credential with a trailing nl": {basicOf(testRabbitCred + "\n")},
		"fail/oversized header":              {"Basic " + strings.Repeat("A", 2000)},
		"fail/empty basic":                   {"Basic "},
	} {
		t.Run(name, func(t *testing.T) {
			for _, path := range []string{"user", "vhost", "resource", "topic"} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, rabbitRequest(http.MethodPost, path, body, auth...))
				if rec.Code != http.StatusUnauthorized || strings.Contains(rec.Body.String(), "allow") ||
					rec.Header().Get("WWW-Authenticate") == "" {
					t.Fatalf("%s: %d %q, want 401 with a challenge", path, rec.Code, rec.Body)
				}
			}
		})
	}
	if len(d.asked) != 0 {
		t.Fatalf("%d decisions were made for unauthenticated callers", len(d.asked))
	}
	t.Run("ok/the broker's credential", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, rabbitRequest(http.MethodPost, "user", body, basicOf(testRabbitCred)))
		if rec.Code != 200 || rec.Body.String() != "allow" {
			t.Fatalf("%d %q", rec.Code, rec.Body)
		}
	})
}

func TestRabbitMQReadsGetAndPost(t *testing.T) {
	h := rabbitHandler(&allowAll{})
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		t.Run("ok/"+method, func(t *testing.T) {
			for _, step := range []struct{ path, body string }{
				{"user", "username=alice&password=sub.alice"},
				{"vhost", "username=alice&vhost=%2F&ip=127.0.0.1&tags="},
				{"resource", "username=alice&vhost=%2F&resource=exchange&name=amq.topic&permission=write&tags="},
				{"topic", "username=alice&vhost=%2F&resource=topic&name=amq.topic&permission=write&tags=&routing_key=orders.created&variable_map.username=alice&variable_map.vhost=%2F"},
			} {
				rec := httptest.NewRecorder()
				h.ServeHTTP(rec, rabbitRequest(method, step.path, step.body, basicOf(testRabbitCred)))
				if rec.Code != 200 || rec.Body.String() != "allow" || rec.Header().Get("X-Decision-Id") == "" {
					t.Fatalf("%s: %d %q", step.path, rec.Code, rec.Body)
				}
			}
		})
	}
}

func TestRabbitMQRejectsMalformedRequests(t *testing.T) {
	d := &allowAll{}
	h := rabbitHandler(d)
	many := strings.Repeat("x=1&", MaxRabbitMQFields)
	for name, tc := range map[string]struct {
		method, path, query, contentType, body, detail string
	}{
		"fail/put":                   {method: http.MethodPut, path: "user", body: "username=alice&password=sub.alice", detail: ""},
		"fail/post with a query too": {method: http.MethodPost, path: "user", query: "username=alice", body: "password=sub.alice", detail: "not the query"},
		"fail/get with a body":       {method: http.MethodGet, path: "user", query: "username=alice&password=sub.alice", body: "x", detail: "not a body"},
		"fail/post as JSON":          {method: http.MethodPost, path: "user", contentType: "application/json", body: `{"username":"alice"}`, detail: "x-www-form-urlencoded"},
		"fail/no username":           {method: http.MethodPost, path: "user", body: "password=sub.alice", detail: "username is required"},
		"fail/no password":           {method: http.MethodPost, path: "user", body: "username=alice", detail: "password is required"},
		"fail/username twice":        {method: http.MethodPost, path: "user", body: "username=alice&username=bob&password=sub.alice", detail: "more than once"},
		"fail/bad escape":            {method: http.MethodPost, path: "user", body: "username=al%zzice&password=sub.alice", detail: "form-encoded"},
		"fail/not UTF-8":             {method: http.MethodPost, path: "user", body: "username=al%ffice&password=sub.alice", detail: "UTF-8"},
		"fail/too many fields":       {method: http.MethodPost, path: "user", body: many + "username=alice&password=sub.alice", detail: "more than"},
		"fail/oversized password":    {method: http.MethodPost, path: "user", body: "username=alice&password=" + strings.Repeat("a", token.MaxTokenSize+1), detail: "password exceeds"},
		"fail/oversized body":        {method: http.MethodPost, path: "user", body: "username=alice&password=sub.alice&x=" + strings.Repeat("a", MaxRabbitMQBody), detail: "body exceeds"},
		"fail/oversized query":       {method: http.MethodGet, path: "user", query: "username=alice&password=sub.alice&x=" + strings.Repeat("a", MaxRabbitMQBody), detail: "query exceeds"},
		"fail/oversized username":    {method: http.MethodPost, path: "user", body: "password=sub.alice&username=" + strings.Repeat("a", MaxRabbitMQUsername+1), detail: "username exceeds"},
		"fail/oversized other field": {method: http.MethodPost, path: "vhost", body: "username=alice&vhost=%2F&tags=" + strings.Repeat("a", 1025), detail: "tags exceeds"},
		"fail/vhost missing":         {method: http.MethodPost, path: "vhost", body: "username=alice", detail: "vhost is required"},
		"fail/oversized name":        {method: http.MethodPost, path: "resource", body: "username=alice&vhost=%2F&resource=queue&permission=read&name=" + strings.Repeat("q", 256), detail: "name exceeds"},
		"fail/resource unknown":      {method: http.MethodPost, path: "resource", body: "username=alice&vhost=%2F&resource=topic&name=q&permission=read", detail: "exchange or queue"},
		"fail/permission unknown":    {method: http.MethodPost, path: "resource", body: "username=alice&vhost=%2F&resource=queue&name=q&permission=delete", detail: "permission must be"},
		"fail/name missing":          {method: http.MethodPost, path: "resource", body: "username=alice&vhost=%2F&resource=queue&permission=read", detail: "name is required"},
		"fail/topic without a key":   {method: http.MethodPost, path: "topic", body: "username=alice&vhost=%2F&resource=topic&name=amq.topic&permission=write", detail: "routing_key is required"},
		"fail/topic configure":       {method: http.MethodPost, path: "topic", body: "username=alice&vhost=%2F&resource=topic&name=amq.topic&permission=configure&routing_key=a", detail: "write or read"},
		"fail/topic of a queue":      {method: http.MethodPost, path: "topic", body: "username=alice&vhost=%2F&resource=queue&name=q&permission=write&routing_key=a", detail: "resource must be topic"},
		"fail/oversized routing key": {method: http.MethodPost, path: "topic", body: "username=alice&vhost=%2F&resource=topic&name=amq.topic&permission=write&routing_key=" + strings.Repeat("k", 256), detail: "routing_key exceeds"},
	} {
		t.Run(name, func(t *testing.T) {
			target := "/v1/rabbitmq/" + tc.path
			if tc.query != "" {
				target += "?" + tc.query
			}
			r := httptest.NewRequest(tc.method, target, strings.NewReader(tc.body))
			ct := tc.contentType
			if ct == "" {
				ct = "application/x-www-form-urlencoded"
			}
			r.Header.Set("Content-Type", ct)
			r.Header.Set("Authorization", basicOf(testRabbitCred))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, r)
			if rec.Code < 400 || strings.Contains(rec.Body.String(), "allow") || !strings.Contains(rec.Body.String(), tc.detail) {
				t.Fatalf("%d %q, want an error saying %q", rec.Code, rec.Body, tc.detail)
			}
		})
	}
	if len(d.asked) != 0 {
		t.Fatalf("%d decisions were made for malformed requests", len(d.asked))
	}
}

func TestRabbitMQOperationMap(t *testing.T) {
	for _, tc := range []struct{ resource, permission, op, dest string }{
		{"exchange", "write", decision.OpPublish, "orders"},
		{"exchange", "read", decision.OpSubscribe, "orders"},
		{"exchange", "configure", decision.OpConfigure, "orders"},
		{"queue", "read", decision.OpConsume, "orders"},
		{"queue", "write", decision.OpSubscribe, "orders"},
		{"queue", "configure", decision.OpConfigure, "orders"},
		{"topic", "write", decision.OpPublish, "orders.created"},
		{"topic", "read", decision.OpSubscribe, "orders.created"},
	} {
		t.Run(tc.resource+" "+tc.permission, func(t *testing.T) {
			op, dest := RabbitMQOperation(tc.resource, tc.permission, "orders", "orders.created")
			if op != tc.op || dest != tc.dest {
				t.Fatalf("= %s %s, want %s %s", op, dest, tc.op, tc.dest)
			}
		})
	}
}

func TestRabbitMQDecidesLaterChecksForTheKeptTokens(t *testing.T) {
	d := &allowAll{}
	h := rabbitHandler(d)
	ask := func(path, body string) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, rabbitRequest(http.MethodPost, path, body, basicOf(testRabbitCred)))
		return rec.Body.String()
	}
	if got := ask("vhost", "username=alice&vhost=%2F"); got != "deny" {
		t.Fatalf("vhost before any connect = %q, want deny", got)
	}
	if got := ask("user", "username=bob&password=sub.alice"); got != "deny" {
		t.Fatalf("username not the subject = %q, want deny", got)
	}
	if got := ask("user", "username=alice&password=sub.alice"); got != "allow" {
		t.Fatalf("user = %q", got)
	}
	d.asked = nil
	if got := ask("resource", "username=alice&vhost=%2F&resource=exchange&name=&permission=write"); got != "allow" {
		t.Fatalf("resource = %q", got)
	}
	m := d.asked[0].Message
	if m == nil || m.Verified == nil || m.Verified.Subject != "alice" || m.Operation != "publish" || m.Destination != "amq.default" ||
		m.Broker != "rabbitmq" || m.VHost != "/" || len(d.asked[0].Headers["authorization"]) != 0 {
		t.Fatalf("decided %+v", m)
	}
	if got := ask("topic", "username=alice&vhost=%2F&resource=topic&name=amq.topic&permission=write&routing_key="); got != "deny" {
		t.Fatalf("empty routing key = %q, want deny", got)
	}
	if got := ask("vhost", "username=bob&vhost=%2F"); got != "deny" {
		t.Fatalf("another user = %q, want deny", got)
	}
}

func TestVerifiedTokensAreBounded(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	tok := func(sub string, n int, exp time.Duration) *token.Token {
		return &token.Token{Hash: fmt.Sprintf("%s-%d", sub, n), Subject: sub, ExpiresAt: now.Add(exp)}
	}
	hashes := func(ts []*token.Token) string {
		var s []string
		for _, t := range ts {
			s = append(s, t.Hash)
		}
		return strings.Join(s, ",")
	}
	t.Run("ok/the one presented last comes first", func(t *testing.T) {
		v := newVerifiedTokens(10, 3, time.Hour)
		for i := range 3 {
			v.remember(tok("alice", i, time.Minute), now)
		}
		v.remember(tok("alice", 0, time.Minute), now) // presented again
		if got := hashes(v.of("alice", now)); got != "alice-0,alice-2,alice-1" {
			t.Fatalf("of = %s", got)
		}
	})
	t.Run("ok/per subject the one presented least recently goes", func(t *testing.T) {
		v := newVerifiedTokens(10, 2, time.Hour)
		for i := range 3 {
			v.remember(tok("alice", i, time.Minute), now)
		}
		if got := hashes(v.of("alice", now)); got != "alice-2,alice-1" || v.len() != 2 {
			t.Fatalf("of = %s, len %d", got, v.len())
		}
	})
	t.Run("ok/a token expires with its exp", func(t *testing.T) {
		v := newVerifiedTokens(10, 2, time.Hour)
		v.remember(tok("alice", 0, time.Minute), now)
		v.remember(tok("alice", 1, 2*time.Hour), now)
		if got := hashes(v.of("alice", now.Add(time.Minute))); got != "alice-1" {
			t.Fatalf("after the first exp: %s", got)
		}
		if got := hashes(v.of("alice", now.Add(time.Hour))); got != "" || v.len() != 0 {
			t.Fatalf("after max age: %s, len %d", got, v.len())
		}
	})
	t.Run("fail/full memory refuses a new token", func(t *testing.T) {
		v := newVerifiedTokens(2, 2, time.Hour)
		if v.remember(tok("alice", 0, time.Minute), now) != nil || v.remember(tok("bob", 0, 2*time.Minute), now) != nil {
			t.Fatal("refused below the bound")
		}
		if v.remember(tok("carol", 0, time.Minute), now) == nil {
			t.Fatal("kept beyond the bound")
		}
		if v.remember(tok("alice", 0, time.Minute), now) != nil {
			t.Fatal("a token presented again was refused")
		}
		// Once one expired, a sweep makes room.
		if v.remember(tok("carol", 0, time.Minute), now.Add(90*time.Second)) != nil || v.len() != 2 {
			t.Fatalf("no room after an expiry: len %d", v.len())
		}
	})
	t.Run("ok/forget drops one token", func(t *testing.T) {
		v := newVerifiedTokens(10, 4, time.Hour)
		v.remember(tok("alice", 0, time.Minute), now)
		v.remember(tok("alice", 1, time.Minute), now)
		v.forget("alice", "alice-0")
		if got := hashes(v.of("alice", now)); got != "alice-1" || v.len() != 1 {
			t.Fatalf("of = %s, len %d", got, v.len())
		}
	})
}

// FuzzRabbitMQForm feeds the form reader and the field checks whatever a
// caller may send: they never panic, and what they accept is within the
// bounds.
func FuzzRabbitMQForm(f *testing.F) {
	f.Add("POST", "application/x-www-form-urlencoded", "", "username=alice&password=tok", "user")
	f.Add("GET", "", "username=alice&vhost=%2F&resource=topic&name=amq.topic&permission=write&routing_key=a.b&variable_map.vhost=%2F", "", "topic")
	f.Add("POST", "application/x-www-form-urlencoded; charset=utf-8", "", "username=a&vhost=&resource=queue&name=q&permission=read", "resource")
	f.Add("POST", "application/x-www-form-urlencoded", "", "username=a&username=b", "vhost")
	f.Add("GET", "", "a=%zz;b", "", "user")
	f.Fuzz(func(t *testing.T, method, contentType, query, body, path string) {
		form, err := readRabbitMQForm(method, contentType, query, strings.NewReader(body))
		if err != nil {
			if !errors.Is(err, errRabbitMQForm) {
				t.Fatalf("error %v does not wrap errRabbitMQForm", err)
			}
			return
		}
		if len(form) > MaxRabbitMQFields {
			t.Fatalf("%d fields accepted", len(form))
		}
		for k, vs := range form {
			if len(vs) != 1 || len(vs[0]) > fieldLimit(k) {
				t.Fatalf("field %q accepted with %d values", k, len(vs))
			}
		}
		q, err := parseRabbitMQRequest(path, form)
		if err != nil {
			return
		}
		if q.Username == "" {
			t.Fatal("accepted without a username")
		}
		if path == "resource" || path == "topic" {
			op, _ := RabbitMQOperation(q.Resource, q.Permission, q.Name, q.RoutingKey)
			switch op {
			case decision.OpPublish, decision.OpSubscribe, decision.OpConsume, decision.OpConfigure:
			default:
				t.Fatalf("operation %q", op)
			}
		}
		_ = url.Values(form).Encode()
	})
}

func TestRabbitMQRefusesConnectsBeyondTheKeptTokens(t *testing.T) {
	r := chi.NewRouter()
	mountRabbitMQ(r, RabbitMQ{Credential: testRabbitCred, Tokens: fakeTokens{}, MaxTokens: 1, MaxTokensPerSubject: 1, MaxTokenAge: time.Hour},
		&allowAll{}, slog.New(slog.DiscardHandler), observer{})
	ask := func(user string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, rabbitRequest(http.MethodPost, "user", "username="+user+"&password=sub."+user, basicOf(testRabbitCred)))
		return rec
	}
	if rec := ask("alice"); rec.Code != 200 || rec.Body.String() != "allow" {
		t.Fatalf("first connect: %d %q", rec.Code, rec.Body)
	}
	rec := ask("bob")
	if rec.Code != http.StatusServiceUnavailable || strings.Contains(rec.Body.String(), "allow") || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("connect beyond max_tokens: %d %q, want 503 with Retry-After", rec.Code, rec.Body)
	}
	if rec := ask("alice"); rec.Code != 200 || rec.Body.String() != "allow" {
		t.Fatalf("a kept token presented again: %d %q", rec.Code, rec.Body)
	}
}

func TestRabbitMQDeniesWhatThePolicyCannotBeAsked(t *testing.T) {
	d := &allowAll{}
	h := rabbitHandler(d)
	ask := func(path, body string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, rabbitRequest(http.MethodPost, path, body, basicOf(testRabbitCred)))
		return rec
	}
	if rec := ask("user", "username=alice&password=sub.alice"); rec.Body.String() != "allow" {
		t.Fatalf("connect: %q", rec.Body)
	}
	d.asked = nil
	for name, tc := range map[string]struct{ path, body string }{
		"fail/a password with white space":       {"user", "username=alice+x&password=sub.alice+x"},
		"fail/a routing key with a control byte": {"topic", "username=alice&vhost=%2F&resource=topic&name=amq.topic&permission=write&routing_key=a%01b"},
		"fail/a queue name with a control byte":  {"resource", "username=alice&vhost=%2F&resource=queue&name=q%7F&permission=read"},
	} {
		t.Run(name, func(t *testing.T) {
			if rec := ask(tc.path, tc.body); rec.Code != 200 || rec.Body.String() != "deny" || rec.Header().Get("X-Decision-Id") != "" {
				t.Fatalf("%d %q, want a deny without a decision", rec.Code, rec.Body)
			}
		})
	}
	if len(d.asked) != 0 {
		t.Fatalf("%d decisions were made", len(d.asked))
	}
}
