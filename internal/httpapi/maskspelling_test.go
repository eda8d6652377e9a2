package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestDecisionLogsEraseEveryCredentialSpelling sends a secret in every way
// a request can carry one past the names the mask knows: query parameters
// that Go's query parser drops (a ";" separator, a bad escape) while the
// URL still holds them, the spellings of credential names in the query and
// in headers (api-key, api_key, key, auth, sessid, pwd, ...), and the
// headers that repeat a URL (Referer, the original-URL headers of
// gateways). No uploaded decision-log event may contain one.
func TestDecisionLogsEraseEveryCredentialSpelling(t *testing.T) {
	p := newPDP(t)
	bearer := p.mint(t, map[string]any{"jti": "mask-spelling"})
	type send struct {
		query  string // with %s for the secret
		header string // name of a header whose value is the secret (%s in a URL)
		value  string
	}
	tests := []struct {
		name string
		send send
	}{
		// Query pairs that url.ParseQuery drops: the query object lacks
		// them, the URL keeps them.
		{"fail/query pair ending in a semicolon", send{query: "access_token=%s;"}},
		{"fail/query pair after a semicolon separator", send{query: "page=1;access_token=%s"}},
		{"fail/query pair with a bad escape in its value", send{query: "access_token=%s%%zz"}},
		{"fail/query pair with a bad escape in its name", send{query: "access_token%%zz=%s"}},
		{"fail/query code after a semicolon", send{query: "state=x;code=%s"}},
		// Credential names in the query, every spelling.
		{"fail/query api-key with a hyphen", send{query: "api-key=%s"}},
		{"fail/query apikey", send{query: "apikey=%s"}},
		{"fail/query key alone", send{query: "key=%s"}},
		{"fail/query access key", send{query: "AWSAccessKeyId=x&access_key=%s"}},
		{"fail/query auth", send{query: "auth=%s"}},
		{"fail/query authorization", send{query: "Authorization=%s"}},
		{"fail/query php session id", send{query: "PHPSESSID=%s"}},
		{"fail/query jsessionid", send{query: "jsessionid=%s"}},
		{"fail/query pwd", send{query: "pwd=%s"}},
		{"fail/query pass", send{query: "pass=%s"}},
		{"fail/query cookie", send{query: "cookie=%s"}},
		{"fail/query bearer", send{query: "bearer=%s"}},
		{"fail/query upper case token", send{query: "ACCESS_TOKEN=%s"}},
		{"fail/query CAS ticket", send{query: "ticket=ST-%s"}},
		{"fail/query SAML response", send{query: "SAMLResponse=%s"}},
		{"fail/query hmac", send{query: "hmac=%s"}},
		{"fail/query name percent-encoded", send{query: "access%%5Ftoken=%s"}},
		{"fail/query name with a folding letter", send{query: "%%C5%%BFession=%s"}},
		{"fail/query signature ending in sig", send{query: "x-sig=%s"}},
		// Credential names in headers, every spelling.
		{"fail/header api_key with an underscore", send{header: "x-api_key", value: "%s"}},
		{"fail/header ending in key", send{header: "x-functions-key", value: "%s"}},
		{"fail/header subscription key", send{header: "Ocp-Apim-Subscription-Key", value: "%s"}},
		{"fail/header access key", send{header: "x-access-key", value: "%s"}},
		{"fail/header pwd", send{header: "x-pwd", value: "%s"}},
		{"fail/header pass", send{header: "x-pass", value: "%s"}},
		{"fail/header sessid", send{header: "x-sessid", value: "%s"}},
		{"fail/header code", send{header: "x-auth-code", value: "%s"}},
		{"fail/header bearer", send{header: "x-bearer", value: "%s"}},
		{"fail/header sig", send{header: "x-sig", value: "%s"}},
		// Headers that repeat a URL, with its query.
		{"fail/referer with a code", send{header: "Referer", value: "https://app.example/cb?code=%s"}},
		{"fail/referrer spelled right", send{header: "Referrer", value: "https://app.example/cb?code=%s"}},
		{"fail/envoy original path", send{header: "x-envoy-original-path", value: "/v1/accounts/42?access_token=%s"}},
		{"fail/original url", send{header: "x-original-url", value: "/v1/accounts/42?access_token=%s"}},
		{"fail/original uri", send{header: "x-original-uri", value: "/v1/accounts/42?access_token=%s"}},
		{"fail/forwarded uri", send{header: "x-forwarded-uri", value: "/v1/accounts/42?access_token=%s"}},
		{"fail/rewrite url", send{header: "x-rewrite-url", value: "/v1/accounts/42?access_token=%s"}},
		{"fail/content location", send{header: "content-location", value: "/v1/accounts/42?access_token=%s"}},
	}
	secrets := map[string]string{} // decision id → secret
	names := map[string]string{}
	for i, tt := range tests {
		secret := fmt.Sprintf("secret%02dQ7x", i)
		url := accountURL
		if tt.send.query != "" {
			url += "?" + fmt.Sprintf(tt.send.query, secret)
		}
		headers := map[string]any{"authorization": "Bearer " + bearer}
		if tt.send.header != "" {
			headers[tt.send.header] = fmt.Sprintf(tt.send.value, secret)
		}
		a := p.decide(t, url, headers)
		secrets[a.ID] = secret
		names[a.ID] = tt.name
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		if err := p.logs.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		p.service.mu.Lock()
		n := 0
		for _, e := range p.service.events {
			if _, ok := secrets[e["decision_id"].(string)]; ok {
				n++
			}
		}
		p.service.mu.Unlock()
		if n == len(secrets) || ctx.Err() != nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.service.mu.Lock()
	defer p.service.mu.Unlock()
	seen := map[string]bool{}
	for _, e := range p.service.events {
		id := e["decision_id"].(string)
		secret, ok := secrets[id]
		if !ok {
			continue
		}
		seen[id] = true
		raw, _ := json.Marshal(e)
		if strings.Contains(string(raw), secret) {
			t.Errorf("%s: the uploaded event holds the secret: %s", names[id], raw)
		}
	}
	for id, name := range names {
		if !seen[id] {
			t.Errorf("%s: decision %s was not logged", name, id)
		}
	}
	if strings.Contains(p.procLog.String(), "Q7x") {
		for _, secret := range secrets {
			if strings.Contains(p.procLog.String(), secret) {
				t.Errorf("the process log holds %s", secret)
			}
		}
	}
}
