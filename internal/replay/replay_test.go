package replay

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
)

// candidate loads the shipped policy, with change applied to its data,
// into a real engine.
func candidate(t *testing.T, change func(pdp map[string]any)) (*policy.Engine, map[string]any) {
	t.Helper()
	set, err := policy.LoadDir("../../rego", policy.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if change != nil {
		change(set.Data["pdp"].(map[string]any))
	}
	e := policy.NewEngine(nil)
	if err := e.Activate(context.Background(), set); err != nil {
		t.Fatal(err)
	}
	return e, set.Data
}

// stricter tightens the default token lifetime to 30 minutes: the example
// token lives an hour.
func stricter(pdp map[string]any) {
	pdp["lifetimes"].(map[string]any)["default"] = map[string]any{"max_lifetime": "30m", "max_age": "1h"}
}

func decisionsOf(t *testing.T, events ...string) []*Decision {
	t.Helper()
	got, err := readAll(t, strings.Join(events, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestReplayCountsWhatChanges(t *testing.T) {
	builtins.SetStore(builtins.Empty)
	t.Cleanup(func() { builtins.SetStore(nil) })
	in := exampleInput(t)
	tests := []struct {
		name   string
		change func(map[string]any)
		events []string
		want   Summary
	}{
		{
			name:   "ok/the same policy changes nothing",
			events: []string{eventJSON("a1", in, true)},
			want:   Summary{Decisions: 1, Evaluated: 1, Unchanged: 1},
		},
		{
			name:   "ok/a tighter lifetime denies what was allowed",
			change: stricter,
			events: []string{eventJSON("a1", in, true), eventJSON("a2", in, true)},
			want:   Summary{Decisions: 2, Evaluated: 2, NewDenials: 2},
		},
		{
			name:   "ok/what was denied and now passes is a new allow",
			events: []string{eventJSON("d1", in, false, "token_expired")},
			want:   Summary{Decisions: 1, Evaluated: 1, NewAllows: 1},
		},
		{
			name:   "ok/a deny for other reasons is a changed reason",
			change: stricter,
			events: []string{eventJSON("d1", in, false, "token_expired")},
			want:   Summary{Decisions: 1, Evaluated: 1, ChangedReasons: 1},
		},
		{
			name:   "ok/a decision id read twice counts once",
			events: []string{eventJSON("a1", in, true), eventJSON("a1", in, true)},
			want:   Summary{Decisions: 1, Evaluated: 1, Unchanged: 1},
		},
		{
			name: "ok/decisions without input or not made by the policy are not re-evaluated",
			events: []string{
				eventJSON("p1", "", false, "request_path_invalid"),
				eventJSON("o1", in, false, "overloaded"),
			},
			want: Summary{Decisions: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eng, data := candidate(t, tt.change)
			r := New(eng, data, true)
			for _, d := range decisionsOf(t, tt.events...) {
				if _, err := r.Replay(context.Background(), d); err != nil {
					t.Fatal(err)
				}
			}
			got := r.Summary()
			if got.Decisions != tt.want.Decisions || got.Evaluated != tt.want.Evaluated || got.Unchanged != tt.want.Unchanged ||
				got.NewDenials != tt.want.NewDenials || got.NewAllows != tt.want.NewAllows || got.ChangedReasons != tt.want.ChangedReasons {
				t.Fatalf("summary = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestReplayGroupsAndExamples(t *testing.T) {
	builtins.SetStore(builtins.Empty)
	t.Cleanup(func() { builtins.SetStore(nil) })
	in := exampleInput(t)
	eng, data := candidate(t, stricter)
	r := New(eng, data, true)
	var events []string
	for i := range 7 {
		events = append(events, eventJSON(fmt.Sprintf("a%d", i), in, true))
	}
	events = append(events, eventJSON("d1", in, false, "token_expired"))
	for _, d := range decisionsOf(t, events...) {
		if _, err := r.Replay(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	s := r.Summary()
	if c := s.ByReason["lifetime_exceeded"]; c == nil || c.NewDenials != 7 || c.ChangedReasons != 1 {
		t.Errorf("by_reason[lifetime_exceeded] = %+v", c)
	}
	if c := s.ByReason["token_expired"]; c == nil || c.ChangedReasons != 1 || c.NewDenials != 0 {
		t.Errorf("by_reason[token_expired] = %+v (a dropped reason)", c)
	}
	if c := s.ByClient["dev-client"]; c == nil || c.Total() != 8 {
		t.Errorf("by_client = %+v", s.ByClient)
	}
	if c := s.ByRoute["read accounts"]; c == nil || c.Total() != 8 {
		t.Errorf("by_route = %+v", s.ByRoute)
	}
	if len(s.Examples.NewDenials) != MaxExamples || len(s.Examples.ByRoute["read accounts"]) != MaxExamples ||
		!slices.Equal(s.Examples.ChangedReasons, []string{"d1"}) {
		t.Errorf("examples = %+v", s.Examples)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]json.RawMessage
	_ = json.Unmarshal(b, &keys)
	want := []string{"by_client", "by_reason", "by_route", "changed_reasons", "decisions", "evaluated", "examples", "new_allows", "new_denials", "unchanged"}
	got := make([]string, 0, len(keys))
	for k := range keys {
		got = append(got, k)
	}
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("JSON keys = %v, want %v", got, want)
	}
	var text strings.Builder
	if err := s.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"new denials        7", "lifetime_exceeded", "dev-client", "read accounts", "e.g. a0"} {
		if !strings.Contains(text.String(), w) {
			t.Errorf("text summary lacks %q:\n%s", w, text.String())
		}
	}
}

// TestReplayAnswersAsRecorded: a decision denied because the store said
// the token was revoked is replayed with the recorded answer (no store
// needed), or against the store the built-ins read.
func TestReplayAnswersAsRecorded(t *testing.T) {
	bolt, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = bolt.Close() })
	ctx := context.Background()
	if _, err := bolt.PutRevocation(ctx, store.Revocation{
		Kind: store.KindSubject, Issuer: "http://127.0.0.1:8181/dev", Value: "alice", Reason: "left",
		NotBefore: time.Unix(1764928600, 0), ExpiresAt: time.Now().Add(time.Hour),
	}); err != nil {
		t.Fatal(err)
	}
	eng, data := candidate(t, nil)
	builtins.SetStore(bolt)
	t.Cleanup(func() { builtins.SetStore(nil) })

	// Record the decision as the server would: its answers by arguments.
	in := exampleInput(t)
	input := ast.MustParseTerm(in).Value
	res, _, err := eng.Eval(ctx, input, time.Unix(0, 1764928800000000000))
	if err != nil {
		t.Fatal(err)
	}
	if res.Allow || res.Reasons[0].Code != "subject_revoked" {
		t.Fatalf("recorded decision = %+v, want a subject_revoked deny", res)
	}
	var answers []string
	for name, obj := range res.NDBuiltinCache {
		var entries []string
		obj.Foreach(func(k, v *ast.Term) {
			key, _ := json.Marshal(k.String())
			entries = append(entries, string(key)+":"+v.String())
		})
		answers = append(answers, fmt.Sprintf("%q:{%s}", name, strings.Join(entries, ",")))
	}
	ev := strings.Replace(eventJSON("r1", in, false, "subject_revoked"), `"timestamp"`,
		`"nd_builtin_cache":{`+strings.Join(answers, ",")+`},"timestamp"`, 1)
	recorded := decisionsOf(t, ev)[0]
	if recorded.Answers["pdp.revocation"] == nil {
		t.Fatalf("no recorded revocation answer in %s", ev)
	}

	tests := []struct {
		name     string
		reader   builtins.Reader
		recorded bool
		want     Change
	}{
		{"ok/recorded answers need no store", builtins.Empty, true, Unchanged},
		{"ok/the store's answers when asked to read it", bolt, false, Unchanged},
		{"ok/an empty store knows no revocation", builtins.Empty, false, NewAllow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			builtins.SetStore(tt.reader)
			got, err := New(eng, data, tt.recorded).Replay(ctx, recorded)
			if err != nil || got != tt.want {
				t.Fatalf("change = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

// TestTextSummaryQuotesControlCharacters: a client id from a log cannot
// write escape sequences to the terminal.
func TestTextSummaryQuotesControlCharacters(t *testing.T) {
	s := &Summary{ByClient: map[string]*Counts{"evil\x1b[2J": {NewDenials: 1}}, Examples: Examples{ByClient: map[string][]string{"evil\x1b[2J": {"id\x07"}}}}
	var b strings.Builder
	if err := s.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(b.String(), "\x1b\x07") || !strings.Contains(b.String(), `"evil\x1b[2J"`) {
		t.Fatalf("text summary = %q", b.String())
	}
}
