package main

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// This file reads PromQL just far enough to say which metrics and labels an
// expression names: the metric names of its selectors with their label
// matchers, and the labels of its by/without/on/ignoring/group_left/
// group_right lists. The Prometheus parser is not in the module graph (the
// prometheus/prometheus module is large), so this is a tokenizer with a
// small grammar around selectors; it refuses what it does not understand
// (a function it does not know, a selector without a metric name, a regular
// expression that is not an alternation of values) rather than guess.

// promQuery is what one PromQL expression names.
type promQuery struct {
	refs     []promRef
	grouping []string // labels of by, without, on, ignoring, group_left, group_right
}

// promRef is one selector: a metric name and its label matchers.
type promRef struct {
	metric   string
	matchers []promMatcher
}

type promMatcher struct {
	label, op, value string
}

type promToken struct {
	kind byte // 'i' identifier, 's' string, 'n' number, duration or dashboard variable, 'p' punctuation
	text string
}

// maxPromQL bounds an expression; the dashboard's and the alerts' are a
// few hundred bytes.
const maxPromQL = 16 << 10

// promFunctions are PromQL's functions and aggregation operators.
var promFunctions = map[string]bool{}

func init() {
	for _, f := range strings.Fields(`
		sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio
		abs absent absent_over_time ceil changes clamp clamp_max clamp_min day_of_month day_of_week
		day_of_year days_in_month delta deriv exp floor histogram_avg histogram_count histogram_fraction
		histogram_quantile histogram_stddev histogram_stdvar histogram_sum holt_winters double_exponential_smoothing
		hour idelta increase irate label_join label_replace ln log2 log10 minute month predict_linear
		rate resets round scalar sgn sort sort_desc sort_by_label sort_by_label_desc sqrt time timestamp vector year
		avg_over_time min_over_time max_over_time sum_over_time count_over_time quantile_over_time
		stddev_over_time stdvar_over_time last_over_time present_over_time mad_over_time
		acos acosh asin asinh atan atanh cos cosh sin sinh tan tanh deg pi rad`) {
		promFunctions[f] = true
	}
}

var (
	errPromSyntax = errors.New("promql")
	// promValue is a label value this reader checks: anything else in a
	// regular-expression matcher is refused.
	promValue = regexp.MustCompile(`^[A-Za-z0-9_.:/-]+$`)
)

// lexPromQL splits an expression into tokens.
func lexPromQL(s string) ([]promToken, error) {
	if len(s) > maxPromQL {
		return nil, fmt.Errorf("%w: expression longer than %d bytes", errPromSyntax, maxPromQL)
	}
	var out []promToken
	// A name does not start with a colon here (only recording rules'
	// may), so that the colon of a subquery ([1h:1m]) stays punctuation.
	isIdentStart := func(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isIdent := func(c byte) bool { return isIdentStart(c) || c == ':' || c >= '0' && c <= '9' }
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			out = append(out, promToken{'i', s[i:j]})
			i = j
		case c == '$':
			j := i + 1
			if j < len(s) && s[j] == '{' {
				k := strings.IndexByte(s[j:], '}')
				if k < 0 {
					return nil, fmt.Errorf("%w: unterminated ${ at %d", errPromSyntax, i)
				}
				j += k + 1
			} else {
				for j < len(s) && isIdent(s[j]) && s[j] != ':' {
					j++
				}
			}
			if j == i+1 {
				return nil, fmt.Errorf("%w: a lone $ at %d", errPromSyntax, i)
			}
			out = append(out, promToken{'n', s[i:j]})
			i = j
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			j := i
			for j < len(s) && (isIdent(s[j]) && s[j] != ':' || s[j] == '.') {
				j++
			}
			out = append(out, promToken{'n', s[i:j]})
			i = j
		case c == '"' || c == '\'' || c == '`':
			var b strings.Builder
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' && c != '`' && j+1 < len(s) {
					j++
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("%w: unterminated string at %d", errPromSyntax, i)
			}
			out = append(out, promToken{'s', b.String()})
			i = j + 1
		default:
			if i+1 < len(s) {
				if two := s[i : i+2]; two == "==" || two == "!=" || two == "<=" || two == ">=" || two == "=~" || two == "!~" {
					out = append(out, promToken{'p', two})
					i += 2
					continue
				}
			}
			if !strings.ContainsRune("(){}[],=<>+-*/%^@:", rune(c)) {
				return nil, fmt.Errorf("%w: unexpected %q at %d", errPromSyntax, c, i)
			}
			out = append(out, promToken{'p', string(c)})
			i++
		}
	}
	return out, nil
}

// parsePromQL returns the metrics and labels expr names.
func parsePromQL(expr string) (promQuery, error) {
	toks, err := lexPromQL(expr)
	if err != nil {
		return promQuery{}, err
	}
	var q promQuery
	var open []string // brackets not yet closed
	closing := map[string]string{")": "(", "]": "[", "}": "{"}
	is := func(i int, kind byte, text string) bool {
		return i < len(toks) && toks[i].kind == kind && toks[i].text == text
	}
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch t.kind {
		case 'p':
			switch t.text {
			case "(", "[":
				open = append(open, t.text)
			case ")", "]":
				if len(open) == 0 || open[len(open)-1] != closing[t.text] {
					return q, fmt.Errorf("%w: unbalanced %s", errPromSyntax, t.text)
				}
				open = open[:len(open)-1]
			case "{":
				return q, fmt.Errorf("%w: a selector without a metric name", errPromSyntax)
			case "}":
				return q, fmt.Errorf("%w: unbalanced }", errPromSyntax)
			}
		case 'i':
			switch t.text {
			case "by", "without", "on", "ignoring", "group_left", "group_right":
				if !is(i+1, 'p', "(") {
					if t.text == "group_left" || t.text == "group_right" {
						continue
					}
					return q, fmt.Errorf("%w: %s needs a list of labels", errPromSyntax, t.text)
				}
				i += 2
				for ; i < len(toks) && !is(i, 'p', ")"); i++ {
					switch {
					case toks[i].kind == 'i':
						q.grouping = append(q.grouping, toks[i].text)
					case is(i, 'p', ","):
					default:
						return q, fmt.Errorf("%w: %q in the label list of %s", errPromSyntax, toks[i].text, t.text)
					}
				}
				if i >= len(toks) {
					return q, fmt.Errorf("%w: the label list of %s is not closed", errPromSyntax, t.text)
				}
				continue
			case "and", "or", "unless", "bool", "offset", "inf", "nan", "Inf", "NaN":
				continue
			}
			if promFunctions[t.text] && (is(i+1, 'i', "by") || is(i+1, 'i', "without")) {
				continue // sum by (x) (...)
			}
			if is(i+1, 'p', "(") {
				if !promFunctions[t.text] {
					return q, fmt.Errorf("%w: unknown function %s", errPromSyntax, t.text)
				}
				continue
			}
			ref := promRef{metric: t.text}
			if is(i+1, 'p', "{") {
				i += 2
				for !is(i, 'p', "}") {
					if i+2 >= len(toks) || toks[i].kind != 'i' || toks[i+1].kind != 'p' || toks[i+2].kind != 's' {
						return q, fmt.Errorf("%w: a label matcher of %s is not label op \"value\"", errPromSyntax, t.text)
					}
					op := toks[i+1].text
					if op != "=" && op != "!=" && op != "=~" && op != "!~" {
						return q, fmt.Errorf("%w: %q is not a matcher operator", errPromSyntax, op)
					}
					ref.matchers = append(ref.matchers, promMatcher{toks[i].text, op, toks[i+2].text})
					i += 3
					if is(i, 'p', ",") {
						i++
					} else if !is(i, 'p', "}") {
						return q, fmt.Errorf("%w: the selector of %s is not closed", errPromSyntax, t.text)
					}
				}
			}
			q.refs = append(q.refs, ref)
		}
	}
	if len(open) > 0 {
		return q, fmt.Errorf("%w: %d brackets not closed", errPromSyntax, len(open))
	}
	if len(q.refs) == 0 {
		return q, fmt.Errorf("%w: no metric", errPromSyntax)
	}
	return q, nil
}

// matcherValues are the label values a matcher names: its value, or the
// alternatives of a regular expression, which must be plain values.
func matcherValues(m promMatcher) ([]string, error) {
	vals := []string{m.value}
	if m.op == "=~" || m.op == "!~" {
		vals = strings.Split(m.value, "|")
	}
	for _, v := range vals {
		if !promValue.MatchString(v) {
			return nil, fmt.Errorf("%w: %s%s%q: only alternations of plain values are checked", errPromSyntax, m.label, m.op, m.value)
		}
	}
	return vals, nil
}

func TestPromQLReader(t *testing.T) {
	tests := []struct {
		name     string
		expr     string
		metrics  []string
		matchers []promMatcher
		grouping []string
		err      string
	}{
		{name: "ok/a rate by labels with dashboard variables",
			expr:     `sum by (reason, grant_type) (rate(pdp_decisions_total{job=~"$job", allow="false"}[$__rate_interval]))`,
			metrics:  []string{"pdp_decisions_total"},
			matchers: []promMatcher{{"job", "=~", "$job"}, {"allow", "=", "false"}},
			grouping: []string{"reason", "grant_type"}},
		{name: "ok/a quantile of buckets",
			expr:    `histogram_quantile(0.99, sum by (le) (rate(pdp_decision_duration_seconds_bucket[5m])))`,
			metrics: []string{"pdp_decision_duration_seconds_bucket"}, grouping: []string{"le"}},
		{name: "ok/set operators, comparisons and an escaped quote",
			expr:    "a_total{x=\"q\\\"\"} > 0 or on (instance) b unless ignoring (le) c == bool 1 # a comment\n",
			metrics: []string{"a_total", "b", "c"}, matchers: []promMatcher{{"x", "=", `q"`}}, grouping: []string{"instance", "le"}},
		{name: "ok/a subquery and offset", expr: `max_over_time(rate(x_total[5m])[1h:1m] offset 5m)`, metrics: []string{"x_total"}},
		{name: "fail/an unknown function", expr: `rates(pdp_decisions_total[5m])`, err: "unknown function rates"},
		{name: "fail/a selector without a metric name", expr: `sum({__name__="pdp_decisions_total"})`, err: "without a metric name"},
		{name: "fail/unbalanced brackets", expr: `sum(rate(x[5m])`, err: "not closed"},
		{name: "fail/a closing bracket of another kind", expr: `sum(rate(x[5m)))`, err: "unbalanced"},
		{name: "fail/an unterminated string", expr: `x{a="b}`, err: "unterminated string"},
		{name: "fail/a matcher without a string", expr: `x{a=b}`, err: "not label op"},
		{name: "fail/by without labels", expr: `sum by rate(x[5m])`, err: "needs a list of labels"},
		{name: "fail/a stray character", expr: `x ; y`, err: "unexpected"},
		{name: "fail/nothing to check", expr: `1 + 1`, err: "no metric"},
		{name: "fail/too long", expr: strings.Repeat("x+", maxPromQL), err: "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := parsePromQL(tt.expr)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var metrics []string
			var matchers []promMatcher
			for _, r := range q.refs {
				metrics = append(metrics, r.metric)
				matchers = append(matchers, r.matchers...)
			}
			if !slices.Equal(metrics, tt.metrics) || !slices.Equal(matchers, tt.matchers) || !slices.Equal(q.grouping, tt.grouping) {
				t.Errorf("metrics %v matchers %v grouping %v, want %v %v %v", metrics, matchers, q.grouping, tt.metrics, tt.matchers, tt.grouping)
			}
		})
	}
	t.Run("fail/a regular expression that is not an alternation", func(t *testing.T) {
		if _, err := matcherValues(promMatcher{"reason", "=~", "token_.*"}); err == nil {
			t.Error("token_.* accepted")
		}
		if v, err := matcherValues(promMatcher{"reason", "=~", "a|b"}); err != nil || !slices.Equal(v, []string{"a", "b"}) {
			t.Errorf("a|b = %v %v", v, err)
		}
	})
}
