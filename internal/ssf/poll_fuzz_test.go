package ssf

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// FuzzPollResponse feeds arbitrary bytes to the RFC 8936 poll response
// parser: it must never panic, and what it accepts is a JSON object whose
// sets it returns exactly, each SET as its string or, for any other value,
// nil (refused later under its key).
func FuzzPollResponse(f *testing.F) {
	for _, s := range []string{
		`{"sets":{"j1":"a.b.c","j2":"d.e.f"},"moreAvailable":true}`,
		`{"sets":{}}`,
		`{"sets":{"j":42,"k":null,"l":{"x":1}},"moreAvailable":false}`,
		`{"sets":{"j":"a","j":"b"}}`,
		`{"sets":[],"moreAvailable":false}`,
		`{"moreAvailable":"true","sets":{}}`,
		`{"sets":{"":"a.b.c"}}`,
		`{"sets":{"` + strings.Repeat("j", 300) + `":"a.b.c"}}`,
		`{"sets":{"j":{"a":{"b":{"c":{"d":{}}}}}}}`,
		`[{"sets":{}}]`, `null`, ``, `{`, `{"sets":{"j":"\ud800"}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sets, more, err := parsePollResponse(data)
		if err != nil {
			if sets != nil || more {
				t.Fatal("a refused response returned sets")
			}
			return
		}
		// Member names are case-sensitive (RFC 8259): the oracle reads the
		// exact names, where encoding/json's struct fields would also take
		// "moreAvAilABle".
		var members map[string]json.RawMessage
		var doc struct {
			Sets          map[string]json.RawMessage
			MoreAvailable *bool
		}
		err = json.Unmarshal(data, &members)
		if err == nil {
			err = errors.Join(unmarshalMember(members, "sets", &doc.Sets), unmarshalMember(members, "moreAvailable", &doc.MoreAvailable))
		}
		if err != nil || doc.Sets == nil {
			t.Fatalf("accepted %q, which is not a poll response: %v", data, err)
		}
		if more != (doc.MoreAvailable != nil && *doc.MoreAvailable) {
			t.Fatalf("moreAvailable = %v for %q", more, data)
		}
		if len(sets) != len(doc.Sets) {
			t.Fatalf("%d sets, want %d", len(sets), len(doc.Sets))
		}
		for jti, raw := range doc.Sets {
			got, ok := sets[jti]
			if !ok {
				t.Fatalf("set %q dropped", jti)
			}
			var s string
			if json.Unmarshal(raw, &s) == nil && raw[0] == '"' {
				if !bytes.Equal(got, []byte(s)) {
					t.Fatalf("set %q = %q, want %q", jti, got, s)
				}
			} else if got != nil {
				t.Fatalf("set %q is not a string but returned %q", jti, got)
			}
		}
	})
}

// unmarshalMember decodes the member named exactly name, when present.
func unmarshalMember(members map[string]json.RawMessage, name string, v any) error {
	raw, ok := members[name]
	if !ok {
		return nil
	}
	return json.Unmarshal(raw, v)
}
