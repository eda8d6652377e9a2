package client

import (
	"errors"
	"testing"
)

// TestParseDecisionRefusesMembersThatDifferOnlyInCase: encoding/json
// matches member names case-insensitively (with Unicode folding: "ſ" is
// "s", "K" is "k") and keeps the last, so a body with "allow": false and
// then "Allow": true is an allow for Go and a deny for a parser that
// matches names exactly: an ambiguous answer, which ParseDecision must
// refuse as it refuses a member given twice.
func TestParseDecisionRefusesMembersThatDifferOnlyInCase(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"fail/allow then Allow", `{"allow":false,"status":403,"Allow":true,"Status":200}`},
		{"fail/ALLOW in capitals", `{"allow":false,"status":403,"ALLOW":true,"STATUS":200}`},
		{"fail/status spelled with a long s", `{"allow":true,"status":200,"ſtatus":200}`},
		{"fail/nested token member", `{"allow":true,"status":200,"token":{"sub":"a","SUB":"b"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDecision([]byte(tc.body))
			if !errors.Is(err, ErrNotDecision) {
				t.Fatalf("ParseDecision = %+v, %v; want ErrNotDecision", d, err)
			}
		})
	}
	if _, err := ParseDecision([]byte(`{"allow":true,"status":200,"token":{"iss":"a","sub":"b"}}`)); err != nil {
		t.Fatalf("a decision with distinct members: %v", err)
	}
}
