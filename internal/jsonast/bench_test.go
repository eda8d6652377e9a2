package jsonast

import (
	"encoding/json"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

var benchClaims = []byte(`{"iss":"https://as.example","sub":"user-1234","aud":["https://api.example","https://other.example"],` +
	`"client_id":"client-abc","scope":"read write admin","iat":1767225600,"exp":1767229200,"nbf":1767225600,` +
	`"jti":"2b7c8e1f-1c7a-4a7e-9a52-6d3f0a0c7d11","cnf":{"jkt":"0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"},` +
	`"act":{"sub":"svc-b"},"authorization_details":[{"type":"payment","actions":["initiate"],"locations":["https://bank.example"]}]}`)

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchClaims)))
	for b.Loop() {
		if _, err := Parse(benchClaims, 16); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodingJSON is the baseline: encoding/json into any, then
// ast.InterfaceToValue (and no duplicate detection).
func BenchmarkEncodingJSON(b *testing.B) {
	b.ReportAllocs()
	b.SetBytes(int64(len(benchClaims)))
	for b.Loop() {
		var x any
		if err := json.Unmarshal(benchClaims, &x); err != nil {
			b.Fatal(err)
		}
		if _, err := ast.InterfaceToValue(x); err != nil {
			b.Fatal(err)
		}
	}
}
