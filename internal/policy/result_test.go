package policy

import (
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

func TestParseResultValidUntil(t *testing.T) {
	const allow = `{"allow": true, "status": 200, "reasons": []`
	tests := []struct {
		name    string
		doc     string
		wantErr bool
		set     bool
		until   time.Time
	}{
		{"ok/absent", allow + `}`, false, false, time.Time{}},
		{"ok/null: no instant", allow + `, "valid_until": null}`, false, true, time.Time{}},
		{"ok/integer nanoseconds", allow + `, "valid_until": 1795000000000000001}`, false, true, time.Unix(0, 1795000000000000001)},
		{"ok/a fraction rounds down", allow + `, "valid_until": 1795000000.5e9}`, false, true, time.Unix(0, 1795000000500000000)},
		{"fail/a string", allow + `, "valid_until": "soon"}`, true, false, time.Time{}},
		{"fail/zero", allow + `, "valid_until": 0}`, true, false, time.Time{}},
		{"fail/negative", allow + `, "valid_until": -5}`, true, false, time.Time{}},
		{"fail/beyond int64 nanoseconds", allow + `, "valid_until": 1e30}`, true, false, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseResult(ast.MustParseTerm(tt.doc).Value)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if err == nil && (r.ValidUntilSet != tt.set || !r.ValidUntil.Equal(tt.until)) {
				t.Errorf("ValidUntil = %v (set %v), want %v (set %v)", r.ValidUntil, r.ValidUntilSet, tt.until, tt.set)
			}
		})
	}
}
