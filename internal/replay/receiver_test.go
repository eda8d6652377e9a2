package replay

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/decisionlog"
)

// TestReplayOfWhatAReceiverStored: the gzip'ed JSON arrays the decision
// logger uploads, stored as they came, replay like the console.
func TestReplayOfWhatAReceiverStored(t *testing.T) {
	builtins.SetStore(builtins.Empty)
	t.Cleanup(func() { builtins.SetStore(nil) })
	var mu sync.Mutex
	var bodies [][]byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	ctx := context.Background()
	l, err := decisionlog.New(ctx, config.DecisionLogs{URL: srv.URL, SampleRate: 1}, decisionlog.Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Two decisions the shipped policy made on the example input.
	shipped, _ := candidate(t, nil)
	input := ast.MustParseTerm(exampleInput(t)).Value
	var ids []string
	for range 2 {
		res, rev, err := shipped.Eval(ctx, input, time.Unix(0, 1764928800000000000))
		if err != nil || !res.Allow {
			t.Fatalf("the example input: %+v, %v", res, err)
		}
		d := &decision.Decision{ID: decision.NewID(), Allow: true, Status: 200, Input: input, Answers: res.NDBuiltinCache,
			Token: &decision.TokenSummary{ClientID: "dev-client"}, Policy: decision.PolicyRef{Revision: rev}}
		ids = append(ids, d.ID)
		l.Log(ctx, decisionlog.Entry{Decision: d})
	}
	stop, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	l.Stop(stop)
	mu.Lock()
	defer mu.Unlock()
	if len(bodies) == 0 {
		t.Fatal("nothing uploaded")
	}
	eng, data := candidate(t, stricter)
	r := New(eng, data, true)
	for i, body := range bodies {
		err := Read("upload", bytes.NewReader(body), Options{}, func(d *Decision) error {
			if d.Answers[builtins.RevocationName] == nil {
				t.Errorf("decision %s: no recorded pdp.revocation answer", d.ID)
			}
			_, err := r.Replay(ctx, d)
			return err
		})
		if err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	if s := r.Summary(); s.Decisions != 2 || s.NewDenials != 2 || len(s.Examples.NewDenials) != 2 || s.ByClient["dev-client"] == nil {
		t.Fatalf("summary = %+v, want both decisions new denials", s)
	}
}
