package builtins

import (
	"encoding/json"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The claims of a token reach pdp.revocation as the issuer wrote them: any
// JSON value must give a TokenRef or an error, never a panic, and a TokenRef
// always has an issuer.
func FuzzTokenRef(f *testing.F) {
	for _, seed := range []string{
		`{"iss":"https://as.example.com","sub":"alice","jti":"j","sid":"s","client_id":"c","iat":1700000000}`,
		`{"iss":"i","iat":1700000000.25}`,
		`{"iss":"i","iat":-1}`,
		`{"iss":"i","iat":1e300}`,
		`{"iss":null}`,
		`"a.b.c"`,
		`[1,2]`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		val, err := ast.InterfaceToValue(v)
		if err != nil {
			return
		}
		ref, err := tokenRef(ast.NewTerm(val))
		if err == nil && ref.Issuer == "" {
			t.Fatalf("TokenRef without issuer from %s", data)
		}
	})
}
