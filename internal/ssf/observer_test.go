package ssf

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

type recordingObserver struct {
	mu    sync.Mutex
	seen  []string
	polls []bool
}

func (o *recordingObserver) SETProcessed(event, outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.seen = append(o.seen, event+" "+outcome)
}

func (o *recordingObserver) SSFPolled(ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.polls = append(o.polls, ok)
}

func TestObserverHearsEveryOutcome(t *testing.T) {
	e := newEnv(t)
	obs := &recordingObserver{}
	recv, err := NewReceiver(context.Background(), e.cfg, e.rev, Options{Logger: testLogger(t), Now: e.clock.Now, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	applied := e.es256.setOf(t, e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, "observed-user")))
	if _, err := recv.Process(ctx, []byte(applied)); err != nil {
		t.Fatal(err)
	}
	if _, err := recv.Process(ctx, []byte(applied)); err != nil {
		t.Fatal(err)
	}
	unknown := e.es256.setOf(t, e.claims("https://example.com/event/"+strings.Repeat("x", 40), map[string]any{}, issSub(tokIssuerA, "u")))
	if _, err := recv.Process(ctx, []byte(unknown)); err != nil {
		t.Fatal(err)
	}
	bad := e.claims(EventSessionRevoked, map[string]any{}, issSub(tokIssuerA, "u"))
	bad["aud"] = "https://someone-else.example"
	if _, err := recv.Process(ctx, []byte(e.es256.setOf(t, bad))); err == nil {
		t.Fatal("a SET for another audience was accepted")
	}
	rec := httptest.NewRecorder()
	recv.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x")))

	want := []string{
		"account-disabled applied", "account-disabled duplicate", "unknown ignored", "none refused", "none refused",
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	// A SET refused by verification (here its audience) names no event:
	// its claims are not believed.
	if !slices.Equal(obs.seen, want) {
		t.Errorf("observed %q, want %q", obs.seen, want)
	}
	for _, s := range obs.seen {
		event, _, _ := strings.Cut(s, " ")
		if event != EventNone && event != EventUnknown && !slices.Contains(EventNames(), event) {
			t.Errorf("event label %q is not bounded", event)
		}
	}
}

// TestObserverHearsEveryPoll: a poll answered with something that is not
// a poll response is reported failed, the next one, answered, ok; this is
// what pdp_ssf_polls_total counts and the SSF poll alert watches.
func TestObserverHearsEveryPoll(t *testing.T) {
	e := newEnv(t)
	tx := newPollTransmitter(t, `<html>maintenance</html>`, pollResponse(t, map[string]any{}, false))
	cfg := slices.Clone(e.cfg)
	cfg[0].PollEndpoint = tx.URL
	cfg[0].PollInterval = 10 * time.Millisecond
	obs := &recordingObserver{}
	recv, err := NewReceiver(context.Background(), cfg, e.rev, Options{Logger: testLogger(t), Now: e.clock.Now, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = recv.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	for range 1000 {
		obs.mu.Lock()
		n := len(obs.polls)
		obs.mu.Unlock()
		if n >= 2 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.polls) < 2 || obs.polls[0] || !obs.polls[1] {
		t.Errorf("polls observed %v, want [false true ...]", obs.polls)
	}
}

func TestReceiverWithoutObserver(t *testing.T) {
	e := newEnv(t) // newEnv sets no Observer: nothing to call, nothing breaks
	set := e.es256.setOf(t, e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, "quiet-user")))
	if _, err := e.recv.Process(context.Background(), []byte(set)); err != nil {
		t.Fatal(err)
	}
}
