package decision

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

var update = flag.Bool("update", false, "rewrite the worked-example golden files under docs/examples/guardrails/")

// workedDir holds the golden files of the guardrail pages' worked examples.
const workedDir = "../../docs/examples/guardrails"

// workedNow is input.now of every worked example (2026-11-18T11:06:40Z), as
// docs/guardrails/README.md#worked-examples says.
var workedNow = time.Unix(0, 1795000000000000000).UTC()

// workedClientCert is the client certificate the mTLS examples present in
// place of the "-----BEGIN CERTIFICATE-----…" of their decide body.
const workedClientCert = "testdata/worked-example-client.pem"

// workedExample is one worked example of docs/guardrails/<page>. Its input
// is built by the pipeline's own code from the decide body (NewRequest,
// extractCredential, buildInput) with the parts Go would have verified
// given as they come out of verification: the token's verified claims and
// binding, the DPoP proof's result, the token-endpoint result. The policy
// is the shipped rego/ with rego/data.json, or with a patch of it that the
// page shows; the store is a real bbolt file holding the state the page
// shows.
type workedExample struct {
	// name is the golden: docs/examples/guardrails/<name>.json is the
	// decision (the policy's decision document), <name>.body.json the
	// decide body, <name>.claims.json the claims, <name>.input.json what
	// Go adds (show) and the built-ins answer, <name>.data.json the data
	// patch, <name>.state.json the store state.
	name, page string
	// body is the decide body, as the page shows it.
	body string
	// claims are the access token's verified claims; "" for no token.
	claims string
	// bound is the token's sender constraint (from its cnf claim).
	bound token.Confirmation
	// proof is what the DPoP verification reported.
	proof proofResult
	// refresh is what the token endpoint's refresh-token handling
	// reported; the family's created is ns since the epoch.
	refresh *refreshResult
	// data is a patch of rego/data.json: JSON, keys "data.pdp.<path>" (a
	// path of names, ["name"] and [index]), each value replacing what is
	// at the path.
	data string
	// sightings are recorded as fingerprints of the access token.
	sightings []store.Sighting
	// revocations are stored before the decision.
	revocations []store.Revocation
	// show lists the input paths (dotted) written to <name>.input.json.
	show []string
}

func TestGuardrailWorkedExamples(t *testing.T) {
	shipped, err := policy.LoadDir("../../rego", policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	produced := map[string]bool{}
	policies := map[string]*workedPolicy{} // by data patch
	for _, ex := range workedExamples {
		t.Run(ex.page+"/"+ex.name, func(t *testing.T) {
			files := runWorkedExample(t, shipped, policies, ex)
			for name, b := range files {
				produced[name] = true
				checkWorkedGolden(t, name, b)
			}
			checkQuoted(t, ex, files)
		})
	}
	if *update {
		return
	}
	entries, err := os.ReadDir(workedDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !produced[e.Name()] {
			t.Errorf("docs/examples/guardrails/%s is no longer produced: delete it and the blocks that quote it", e.Name())
		}
	}
}

// runWorkedExample makes the decision of ex and returns its golden files
// by name.
func runWorkedExample(t *testing.T, shipped *policy.Set, policies map[string]*workedPolicy, ex workedExample) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	files := map[string][]byte{}

	// The policy: shipped modules, shipped data or a patch of it.
	if ex.data != "" {
		files[ex.name+".data.json"] = indentJSON(t, ex.data)
	}
	pol := policies[ex.data]
	if pol == nil {
		pol = newWorkedPolicy(t, shipped, ex.data)
		policies[ex.data] = pol
	}

	// The store.
	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	builtins.SetStore(st)
	t.Cleanup(func() {
		builtins.SetStore(nil)
		st.Close()
	})

	// The request, through the decide parser's normalisation.
	raw := decodeWorkedBody(t, ex.body)
	files[ex.name+".body.json"] = indentJSON(t, ex.body)
	req, err := NewRequest(raw)
	if err != nil {
		t.Fatalf("the decide body is refused: %v", err)
	}

	var (
		cred   credential
		tok    *token.Token
		tokErr *token.Error
		te     *tokenEndpointResult
	)
	if ex.refresh != nil || isWorkedTokenEndpoint(req, pol.set) {
		te = &tokenEndpointResult{grantType: req.Form.Get("grant_type"), refresh: ex.refresh}
		if ex.refresh != nil && ex.refresh.hash == "" && req.Form.Get("refresh_token") != "" {
			ex.refresh.hash = token.HashToken(req.Form.Get("refresh_token"))
		}
		tokErr = &token.Error{Code: token.CodeTokenMissing, Message: "no access token"}
	} else {
		cred = extractCredential(req.Headers)
		if ex.claims == "" {
			t.Fatal("an access-token request needs claims")
		}
		files[ex.name+".claims.json"] = indentJSON(t, ex.claims)
		claims, err := ast.ParseTerm(ex.claims)
		if err != nil {
			t.Fatal(err)
		}
		obj := claims.Value.(ast.Object)
		iss, _ := obj.Get(ast.StringTerm("iss")).Value.(ast.String)
		tok = &token.Token{Hash: token.HashToken(cred.raw), Source: token.SourceJWT, Issuer: string(iss), Claims: obj, Confirmation: ex.bound}
	}
	if ex.claims != "" && tok == nil {
		t.Fatal("claims given for a token-endpoint request")
	}

	for _, s := range ex.sightings {
		s.ExpiresAt = time.Now().Add(time.Hour) // the store's own bookkeeping
		if err := st.RecordFingerprint(ctx, tok.Hash, s); err != nil {
			t.Fatal(err)
		}
	}
	var state []map[string]any
	for _, r := range ex.revocations {
		r.ExpiresAt = time.Now().Add(time.Hour)
		if _, err := st.PutRevocation(ctx, r); err != nil {
			t.Fatal(err)
		}
		state = append(state, map[string]any{"kind": r.Kind, "iss": r.Issuer, "value": r.Value, "reason": r.Reason,
			"not_before": r.NotBefore.UTC().Format(time.RFC3339)})
	}
	if state != nil {
		files[ex.name+".state.json"] = marshalIndent(t, map[string]any{"revocations": state})
	}

	input := buildInput(req, cred, tok, tokErr, ex.proof, te, ast.String("prod"), workedNow)

	if len(ex.show) > 0 || len(ex.sightings) > 0 {
		shown := map[string]any{}
		for _, p := range ex.show {
			v, err := ast.JSON(inputAt(t, input, p))
			if err != nil {
				t.Fatal(err)
			}
			shown[p] = v
		}
		if len(ex.sightings) > 0 {
			shown["pdp.last_seen(token.hash)"] = lastSeen(t, tok.Hash)
		}
		files[ex.name+".input.json"] = marshalIndent(t, shown)
	}

	// The decision document, and Go's reading of it.
	doc := pol.decisionDocument(t, input)
	files[ex.name+".json"] = marshalIndent(t, doc)
	res, _, err := pol.engine.Eval(ctx, input, workedNow)
	if err != nil {
		t.Fatalf("the engine refuses the decision: %v", err)
	}
	if res.Allow != doc["allow"] || json.Number(strconv.Itoa(res.Status)) != doc["status"] {
		t.Errorf("the engine reads allow %v status %d from %v", res.Allow, res.Status, doc)
	}
	return files
}

// decodeWorkedBody reads the decide body the way POST /v1/decide does
// (internal/httpapi checks that the pages' bodies pass its parser too).
func decodeWorkedBody(t *testing.T, body string) RawRequest {
	t.Helper()
	var b struct {
		Request struct {
			Method        string         `json:"method"`
			URL           string         `json:"url"`
			Headers       map[string]any `json:"headers"`
			RemoteIP      string         `json:"remote_ip"`
			TLSClientCert string         `json:"tls_client_cert"`
			Body          url.Values     `json:"body"`
		} `json:"request"`
		Context map[string]any `json:"context"`
	}
	dec := json.NewDecoder(strings.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("decide body: %v", err)
	}
	raw := RawRequest{Method: b.Request.Method, URL: b.Request.URL, Headers: map[string][]string{}, RemoteIP: b.Request.RemoteIP, Form: b.Request.Body}
	for k, v := range b.Request.Headers {
		switch v := v.(type) {
		case string:
			raw.Headers[k] = []string{v}
		case []any:
			for _, s := range v {
				raw.Headers[k] = append(raw.Headers[k], s.(string))
			}
		default:
			t.Fatalf("header %s: %T", k, v)
		}
	}
	if c := b.Request.TLSClientCert; c != "" {
		if !strings.HasPrefix(c, "-----BEGIN CERTIFICATE-----") {
			t.Fatalf("tls_client_cert %q", c)
		}
		pem, err := os.ReadFile(workedClientCert)
		if err != nil {
			t.Fatal(err)
		}
		raw.ClientCertPEM = string(pem)
	}
	if b.Context != nil {
		v, err := ast.InterfaceToValue(b.Context)
		if err != nil {
			t.Fatal(err)
		}
		raw.Context = v.(ast.Object)
	}
	return raw
}

func isWorkedTokenEndpoint(req *Request, set *policy.Set) bool {
	te, _ := set.Data["pdp"].(map[string]any)["token_endpoint"].(map[string]any)
	u, _ := te["url"].(string)
	return req.Method == "POST" && u != "" && req.URL.String() == u
}

// workedPolicy is the shipped policy with one data patch: activated in a
// policy.Engine (which validates the data: a patch the shipped validator
// refuses fails the example) and prepared as a plain query of the decision
// document.
type workedPolicy struct {
	set    *policy.Set
	engine *policy.Engine
	query  rego.PreparedEvalQuery
}

func newWorkedPolicy(t *testing.T, shipped *policy.Set, patch string) *workedPolicy {
	t.Helper()
	set := &policy.Set{Modules: shipped.Modules, Data: copyJSON(t, shipped.Data), Revision: "worked", Source: "test"}
	if patch != "" {
		applyDataPatch(t, set.Data, patch)
	}
	eng := policy.NewEngine(nil)
	if err := eng.Activate(context.Background(), set); err != nil {
		t.Fatalf("the policy data is refused: %v", err)
	}
	opts := []func(*rego.Rego){rego.Query(policy.Query), rego.Store(inmem.NewFromObject(set.Data)), rego.StrictBuiltinErrors(true)}
	for _, m := range set.Modules {
		opts = append(opts, rego.ParsedModule(m))
	}
	q, err := rego.New(opts...).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return &workedPolicy{set: set, engine: eng, query: q}
}

// decisionDocument evaluates data.tokenguard.main.decision, built-in
// errors strict as on the decision path.
func (p *workedPolicy) decisionDocument(t *testing.T, input ast.Value) map[string]any {
	t.Helper()
	rs, err := p.query.Eval(context.Background(), rego.EvalParsedInput(input), rego.EvalTime(workedNow))
	if err != nil || len(rs) != 1 {
		t.Fatalf("decision: %v %v", rs, err)
	}
	b, err := json.Marshal(rs[0].Expressions[0].Value)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// lastSeen is what pdp.last_seen answers for hash.
func lastSeen(t *testing.T, hash string) any {
	t.Helper()
	rs, err := rego.New(rego.Query(fmt.Sprintf("x := pdp.last_seen(%q)", hash)), rego.StrictBuiltinErrors(true)).Eval(context.Background())
	if err != nil || len(rs) != 1 {
		t.Fatalf("pdp.last_seen: %v %v", rs, err)
	}
	return rs[0].Bindings["x"]
}

// inputAt is the input member at a dotted path.
func inputAt(t *testing.T, input ast.Value, path string) ast.Value {
	t.Helper()
	v := input
	for _, k := range strings.Split(path, ".") {
		obj, ok := v.(ast.Object)
		if !ok {
			t.Fatalf("input.%s: not an object at %s", path, k)
		}
		m := obj.Get(ast.StringTerm(k))
		if m == nil {
			t.Fatalf("input.%s: no %s", path, k)
		}
		v = m.Value
	}
	return v
}

var dataPathStep = regexp.MustCompile(`^(?:\.([a-z_]+)|\["([^"]+)"\]|\[([0-9]+)\])`)

// applyDataPatch replaces, for each "data.pdp.<path>" of patch, what is at
// the path of data.
func applyDataPatch(t *testing.T, data map[string]any, patch string) {
	t.Helper()
	var p map[string]any
	if err := json.Unmarshal([]byte(patch), &p); err != nil {
		t.Fatalf("data patch: %v", err)
	}
	for _, key := range slices.Sorted(maps.Keys(p)) {
		rest, ok := strings.CutPrefix(key, "data")
		if !ok {
			t.Fatalf("data patch: %s does not start with data.", key)
		}
		var steps []any
		for rest != "" {
			m := dataPathStep.FindStringSubmatch(rest)
			switch {
			case m == nil:
				t.Fatalf("data patch: bad path %s", key)
			case m[1] != "":
				steps = append(steps, m[1])
			case m[2] != "":
				steps = append(steps, m[2])
			default:
				i, _ := strconv.Atoi(m[3])
				steps = append(steps, i)
			}
			rest = rest[len(m[0]):]
		}
		var parent any = data
		for i, s := range steps {
			last := i == len(steps)-1
			switch s := s.(type) {
			case string:
				obj, ok := parent.(map[string]any)
				if !ok {
					t.Fatalf("data patch: %s: not an object before %s", key, s)
				}
				if last {
					obj[s] = p[key]
				} else if _, ok := obj[s]; !ok {
					obj[s] = map[string]any{}
				}
				parent = obj[s]
			case int:
				arr, ok := parent.([]any)
				if !ok || s >= len(arr) {
					t.Fatalf("data patch: %s: no element %d", key, s)
				}
				if last {
					arr[s] = p[key]
				}
				parent = arr[s]
			}
		}
	}
}

func copyJSON(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// indentJSON keeps the members' order as written.
func indentJSON(t *testing.T, s string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, []byte(s), "", "  "); err != nil {
		t.Fatalf("%v in %s", err, s)
	}
	return append(buf.Bytes(), '\n')
}

func marshalIndent(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func checkWorkedGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join(workedDir, name)
	if *update {
		if err := os.MkdirAll(workedDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("%v (go test ./internal/decision -run TestGuardrailWorkedExamples -update)", err)
		return
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/examples/guardrails/%s differs from the decision made now:\n%s\nwant\n%s", name, got, want)
	}
}

// checkQuoted fails unless the example's page quotes each of its golden
// files (the blocks' content is TestDocsGoldenBlocks' business).
func checkQuoted(t *testing.T, ex workedExample, files map[string][]byte) {
	t.Helper()
	page, err := os.ReadFile(filepath.Join("../../docs/guardrails", ex.page))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if !bytes.Contains(page, []byte("<!-- golden: guardrails/"+name+" -->")) {
			t.Errorf("docs/guardrails/%s does not quote guardrails/%s", ex.page, name)
		}
	}
}

// TestDocsRouteSnippetsAccepted: every route the docs show as a json block
// (an object with "path" and "methods") is accepted by the shipped policy's
// validator when added to the shipped rego/data.json routes.
func TestDocsRouteSnippetsAccepted(t *testing.T) {
	shipped, err := policy.LoadDir("../../rego", policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)\n```json\n(.*?)\n```")
	pages, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, page := range pages {
		b, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range block.FindAllSubmatch(b, -1) {
			var route map[string]any
			if json.Unmarshal(m[1], &route) != nil || route["path"] == nil || route["methods"] == nil {
				continue
			}
			checked++
			set := &policy.Set{Modules: shipped.Modules, Data: copyJSON(t, shipped.Data), Revision: "route", Source: "test"}
			d := set.Data["pdp"].(map[string]any)
			d["routes"] = append(d["routes"].([]any), route)
			if err := policy.NewEngine(nil).Activate(context.Background(), set); err != nil {
				t.Errorf("%s: the route %s is refused: %v", page, m[1], err)
			}
		}
	}
	if checked == 0 {
		t.Error("no route snippet found in docs/")
	}
}
