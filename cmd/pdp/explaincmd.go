package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	opacmd "github.com/open-policy-agent/opa/cmd"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/spf13/cobra"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/jsonast"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
)

// Exit codes of `pdp explain`.
const (
	explainDone       = 0 // explained, whatever the decision
	explainFailed     = 1 // the policy could not decide (the server would deny with policy_error)
	explainUnreadable = 2 // usage error, or the input or the policy cannot be read
)

// Bounds of the --input file: the decide body's size, and a nesting the
// policy input never needs more of.
const (
	maxExplainInput = 1 << 20
	maxExplainDepth = 64
)

func newExplainCommand() *cobra.Command {
	var (
		input, policyPath, dataDir, format string
	)
	c := &cobra.Command{
		Use:   "explain --input FILE",
		Short: "Explain one decision offline: what each guardrail compared, against a policy directory or bundle",
		Long: `Explain one decision offline, as POST /v1/admin/explain does on a server:
evaluate the policy on a policy input document and print the decision and,
for every guardrail that ran, its outcome (deny, warn or pass), its mode,
the rule (file:line) and what it compared.

--input is a policy input document: the "input" of a decision-log line
(which may be given whole: its "input" member is taken), or what
pdp opa eval -i reads. It is not a /v1/decide body: verifying a token
needs the issuers' keys, which only the server has. input.now is the
time of the decision (now when absent).

--policy is a policy directory or bundle (default ./rego). The pdp.*
built-ins read --data-dir's store read-only (a backup, or a stopped
server's data dir), else an empty store: nothing is written either way.

Exit status: 0 explained (allow or deny), 1 the policy could not decide,
2 usage error, or the input or the policy cannot be read.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return usageError(cmd, fmt.Errorf("takes no arguments, got %d", len(args)))
			}
			if input == "" {
				return usageError(cmd, errors.New("--input FILE is required"))
			}
			if format != "text" && format != "json" {
				return usageError(cmd, fmt.Errorf("--format %q: must be text or json", format))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if code := explainOffline(cmd, input, policyPath, dataDir, format == "json"); code != explainDone {
				return &opacmd.ExitError{Exit: code}
			}
			return nil
		},
	}
	c.SetFlagErrorFunc(usageError)
	f := c.Flags()
	f.StringVar(&input, "input", "", "the policy input document (JSON), or a decision-log line")
	f.StringVar(&policyPath, "policy", "rego", "the policy directory or bundle")
	f.StringVar(&dataDir, "data-dir", "", "the data dir whose store the pdp.* built-ins read, read-only (default: an empty store)")
	f.StringVar(&format, "format", "text", "text or json")
	return c
}

// explainedOffline is what pdp explain --format json prints: the fields of
// a decision the policy gives, and the explanation.
type explainedOffline struct {
	Allow           bool                 `json:"allow"`
	Status          int                  `json:"status"`
	Reasons         []policy.Reason      `json:"reasons"`
	Warnings        []policy.Reason      `json:"warnings"`
	Headers         map[string]string    `json:"headers"`
	UpstreamHeaders map[string]string    `json:"upstream_headers"`
	GrantType       string               `json:"grant_type"`
	Policy          map[string]string    `json:"policy"`
	Explanation     []policy.Explanation `json:"explanation"`
}

func explainOffline(cmd *cobra.Command, inputPath, policyPath, dataDir string, asJSON bool) int {
	stderr := cmd.ErrOrStderr()
	fail := func(code int, format string, args ...any) int {
		fmt.Fprintf(stderr, "pdp explain: "+format+"\n", args...)
		return code
	}
	f, err := os.Open(inputPath)
	if err != nil {
		return fail(explainUnreadable, "--input: %v", err)
	}
	input, err := readExplainInput(f)
	f.Close()
	if err != nil {
		return fail(explainUnreadable, "--input %s: %v", inputPath, err)
	}
	set, err := readPolicy(policyPath, policy.Limits{MaxFileBytes: config.DefaultPolicyMaxFileBytes, MaxTotalBytes: config.DefaultPolicyMaxTotalBytes})
	if err != nil {
		return fail(explainUnreadable, "--policy %s: %v", policyPath, err)
	}
	if dataDir == "" {
		builtins.SetStore(builtins.Empty)
	} else {
		st, err := store.OpenReadOnly(dataDir, time.Second)
		if err != nil {
			return fail(explainUnreadable, "--data-dir: %v (a running server holds its store: read a backup, pdp store backup)", err)
		}
		defer st.Close()
		builtins.SetStore(st)
	}
	defer builtins.SetStore(nil)
	engine := policy.NewEngine(nil)
	if err := engine.Activate(cmd.Context(), set); err != nil {
		var invalid *policy.ConfigErrorsError
		if errors.As(err, &invalid) {
			return fail(explainUnreadable, "--policy %s: %v\n%s", policyPath, err, configErrorLines(invalid))
		}
		return fail(explainUnreadable, "--policy %s: %v", policyPath, err)
	}
	res, rev, xs, err := engine.Explain(cmd.Context(), input, nowOf(input))
	if err != nil {
		return fail(explainFailed, "the policy could not decide (the server denies with policy_error): %v", err)
	}
	out := explainedOffline{
		Allow: res.Allow, Status: res.Status, Reasons: nonNilReasons(res.Reasons), Warnings: nonNilReasons(res.Warnings),
		Headers: nonNilMap(res.Headers), UpstreamHeaders: nonNilMap(res.UpstreamHeaders), GrantType: res.GrantType,
		Policy: map[string]string{"revision": rev, "module": res.Module}, Explanation: xs,
	}
	w := cmd.OutOrStdout()
	if asJSON {
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintln(w, string(b))
		return explainDone
	}
	writeExplainText(w, out)
	return explainDone
}

// readExplainInput reads a policy input document, or a decision-log line
// whose "input" member is one: one JSON object, at most maxExplainInput
// bytes and maxExplainDepth deep.
func readExplainInput(r io.Reader) (ast.Object, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxExplainInput+1))
	if err != nil {
		return nil, err
	}
	if len(raw) > maxExplainInput {
		return nil, fmt.Errorf("larger than %d bytes", maxExplainInput)
	}
	v, err := jsonast.Parse(raw, maxExplainDepth)
	if err != nil {
		return nil, err
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, errors.New("not a JSON object")
	}
	// A decision-log event: its input is the document.
	if in := obj.Get(ast.StringTerm("input")); in != nil && obj.Get(ast.StringTerm("decision_id")) != nil {
		if obj, ok = in.Value.(ast.Object); !ok {
			return nil, errors.New("the decision-log line's input is not an object")
		}
	}
	return obj, nil
}

// nowOf is input.now (ns since the epoch), else now.
func nowOf(input ast.Object) time.Time {
	if t := input.Get(ast.StringTerm("now")); t != nil {
		if n, ok := t.Value.(ast.Number); ok {
			if ns, ok := n.Int64(); ok {
				return time.Unix(0, ns)
			}
		}
	}
	return time.Now()
}

func writeExplainText(w io.Writer, out explainedOffline) {
	verdict := "deny"
	if out.Allow {
		verdict = "allow"
	}
	fmt.Fprintf(w, "decision: %s %d (module %q, revision %s)\n", verdict, out.Status, out.Policy["module"], out.Policy["revision"])
	for _, r := range out.Reasons {
		fmt.Fprintf(w, "  reason  %s: %s\n", r.Code, r.Message)
	}
	for _, r := range out.Warnings {
		fmt.Fprintf(w, "  warning %s: %s\n", r.Code, r.Message)
	}
	fmt.Fprintln(w, "guardrails:")
	for _, x := range out.Explanation {
		code := x.Code
		if code == "" {
			code = "-"
		}
		fmt.Fprintf(w, "  %-5s %-12s %-26s %-8s %s\n", x.Outcome, x.Guardrail, code, x.Mode, x.Rule)
		if x.Message != "" {
			fmt.Fprintf(w, "        %s\n", x.Message)
		}
		for _, k := range slices.Sorted(maps.Keys(x.Values)) {
			b, _ := json.Marshal(x.Values[k])
			fmt.Fprintf(w, "        %s = %s\n", k, strings.TrimSpace(string(b)))
		}
	}
}

func nonNilReasons(rs []policy.Reason) []policy.Reason {
	if rs == nil {
		return []policy.Reason{}
	}
	return rs
}

func nonNilMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
