package extauthz

import (
	"context"
	"net/url"
	"testing"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/protobuf/proto"

	"github.com/tokenguard/pdp/internal/decision"
)

// FuzzCheck feeds arbitrary check requests (attacker-influenced headers,
// paths, hosts, bodies and certificates) through the translation: it must
// never panic, and whatever reaches the decider has an absolute http(s)
// URL; what does not is a denied response, never an OK.
func FuzzCheck(f *testing.F) {
	seed := func(r *authv3.CheckRequest) {
		b, err := proto.Marshal(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	seed(envoyRequest(map[string]string{"authorization": "Bearer a,Bearer b", "dpop": "x"}))
	r := envoyRequest(map[string]string{"content-type": "application/x-www-form-urlencoded"})
	r.Attributes.Request.Http.Body = "grant_type=refresh_token&refresh_token=a"
	r.Attributes.Source.Certificate = "-----BEGIN%20CERTIFICATE-----%0AAA%3D%3D%0A-----END%20CERTIFICATE-----%0A"
	seed(r)
	r = envoyRequest(nil)
	r.Attributes.Request.Http.Host = "API.example.com:443"
	r.Attributes.Request.Http.Path = "/a/../b/%2e%2e/c?x=%zz"
	seed(r)
	for _, p := range []string{`/v1/accounts/42\..\..\admin\users`, "/v1/accounts/42%5C..%5Cadmin", "/a%2Fb", "/%252F",
		"/%C0%AF", "/%E0%80%AF", "/%FF", "/a%00", "/a\x00b", "/a;jsessionid=x", "/..;/admin", "/a//../b", "/a#/../admin"} {
		r = envoyRequest(nil)
		r.Attributes.Request.Http.Path = p
		seed(r)
	}
	f.Add([]byte{})

	f.Fuzz(func(t *testing.T, data []byte) {
		var req authv3.CheckRequest
		if err := proto.Unmarshal(data, &req); err != nil {
			return
		}
		reached := false
		s := NewServer(&recorder{answer: func(r *decision.Request) (*decision.Decision, error) {
			reached = true
			if r.PathRefused != "" {
				// The engine denies it first; nothing may match a route.
				if *r.URL != (url.URL{}) {
					t.Errorf("a refused path reached the decider with URL %q", r.URL)
				}
				return &decision.Decision{Status: 400}, nil
			}
			if !r.URL.IsAbs() || (r.URL.Scheme != "http" && r.URL.Scheme != "https") || r.URL.Host == "" {
				t.Errorf("a request reached the decider with URL %q", r.URL)
			}
			if _, err := url.Parse(r.URL.String()); err != nil {
				t.Errorf("the URL does not round-trip: %v", err)
			}
			return &decision.Decision{Allow: true, Status: 200}, nil
		}}, Options{})
		resp, err := s.Check(context.Background(), &req)
		if err != nil || resp == nil {
			t.Fatalf("Check = %v, %v: every outcome is a response", resp, err)
		}
		if !reached && (resp.GetStatus().GetCode() == 0 || resp.GetDeniedResponse() == nil) {
			t.Fatalf("a request the decider never saw was not denied: %v", resp)
		}
	})
}
