package httpapi

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// docsJSONBlock is a fenced json block of a docs page.
var docsJSONBlock = regexp.MustCompile("(?s)\n[ \t]*```json\n(.*?)\n[ \t]*```")

// TestDocsDecideBodiesAccepted: every decide body the docs show (a json
// block, or a golden file of docs/examples/guardrails/, whose object has a
// "request" member) passes the decide parser and the request normalisation.
// An abbreviated client certificate ("-----BEGIN CERTIFICATE-----…") stands
// for a real one, which is put in its place.
func TestDocsDecideBodiesAccepted(t *testing.T) {
	cert, err := os.ReadFile("../decision/testdata/worked-example-client.pem")
	if err != nil {
		t.Fatal(err)
	}
	bodies := map[string][]byte{} // by where they are
	err = filepath.WalkDir("../../docs", func(path string, d os.DirEntry, err error) error {
		switch {
		case err != nil || d.IsDir():
			return err
		case strings.HasSuffix(path, ".md"):
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for i, m := range docsJSONBlock.FindAllSubmatch(b, -1) {
				bodies[fmt.Sprintf("%s block %d", path, i+1)] = m[1]
			}
		case strings.HasSuffix(path, ".body.json"):
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			bodies[path] = b
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for where, b := range bodies {
		var v map[string]any
		if json.Unmarshal(b, &v) != nil {
			continue // not a JSON object (a fragment or a pattern)
		}
		req, ok := v["request"].(map[string]any)
		if _, msg := v["message"].(map[string]any); !ok && !msg {
			continue
		}
		if c, _ := req["tls_client_cert"].(string); strings.HasPrefix(c, "-----BEGIN CERTIFICATE-----") &&
			(strings.HasSuffix(c, "…") || strings.HasSuffix(c, "...")) {
			req["tls_client_cert"] = string(cert)
		}
		body, _ := json.Marshal(v)
		checked++
		raw, p := decodeDecideBody(body)
		if p != nil {
			t.Errorf("%s: the decide parser refuses the body: %s", where, p.Detail)
			continue
		}
		if _, err := raw.build(); err != nil {
			t.Errorf("%s: the request is refused: %v", where, err)
		}
	}
	if checked < 28 {
		t.Errorf("%d decide bodies checked, want at least the 28 worked examples'", checked)
	}
}
