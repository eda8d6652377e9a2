package ssf

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/store"
)

// pollTransmitter is an RFC 8936 transmitter that answers a scripted
// sequence of polls and records the requests.
type pollTransmitter struct {
	*httptest.Server
	mu        sync.Mutex
	requests  []pollRequest
	auth      []string
	responses []string
	done      chan struct{}
}

func newPollTransmitter(t *testing.T, responses ...string) *pollTransmitter {
	t.Helper()
	p := &pollTransmitter{responses: responses, done: make(chan struct{})}
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var req pollRequest
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.Unmarshal(body, &req) != nil {
			t.Errorf("poll: method %s, content type %q, body %s", r.Method, r.Header.Get("Content-Type"), body)
			http.Error(w, "bad poll", http.StatusBadRequest)
			return
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.requests = append(p.requests, req)
		p.auth = append(p.auth, r.Header.Get("Authorization"))
		n := len(p.requests)
		resp := `{"sets":{},"moreAvailable":false}`
		if n <= len(p.responses) {
			resp = p.responses[n-1]
		}
		if n == len(p.responses) {
			close(p.done)
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, resp)
	}))
	t.Cleanup(p.Close)
	return p
}

func (p *pollTransmitter) seen() ([]pollRequest, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.requests), slices.Clone(p.auth)
}

func pollResponse(t *testing.T, sets map[string]any, more bool) string {
	t.Helper()
	data, err := json.Marshal(map[string]any{"sets": sets, "moreAvailable": more})
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func TestPollAppliesSETsAndReportsAcksAndErrorsInTheNextPoll(t *testing.T) {
	// The transmitter is set up after the env, which needs its URL: the
	// env's receiver is replaced by one that polls.
	e := newEnv(t)
	good := e.claims(EventCredentialCompromise, map[string]any{}, issSub(tokIssuerA, "polled-user"))
	badAud := e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, "polled-user-2"))
	badAud["aud"] = "https://other-pdp.example"
	foreign := e.claims(EventAccountDisabled, map[string]any{}, issSub(foreignIss, "polled-user-3"))
	mismatched := e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, "polled-user-4"))
	fromOtherTx := e.claims(EventAccountDisabled, map[string]any{}, issSub(otherTx, "polled-user-5"))
	fromOtherTx["iss"] = otherTx
	old := e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, "polled-user-6"))
	old["iat"] = e.clock.Now().Add(-DefaultMaxAge - time.Minute).Unix()
	future := e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, "polled-user-7"))
	future["iat"] = e.clock.Now().Add(time.Hour).Unix()
	oldJTI, futureJTI := old["jti"].(string), future["jti"].(string)
	second := e.claims(EventSessionRevoked, map[string]any{}, map[string]any{"format": "complex", "session": issSub(tokIssuerB, "polled-sid")})

	goodJTI, badJTI, foreignJTI, otherJTI, secondJTI := good["jti"].(string), badAud["jti"].(string), foreign["jti"].(string), fromOtherTx["jti"].(string), second["jti"].(string)
	tx := newPollTransmitter(t,
		pollResponse(t, map[string]any{
			goodJTI:        e.es256.setOf(t, good),
			badJTI:         e.rs256.setOf(t, badAud),
			foreignJTI:     e.es256.setOf(t, foreign),
			"delivered-as": e.es256.setOf(t, mismatched),
			otherJTI:       e.otherTx.setOf(t, fromOtherTx),
			"not-a-string": 42,
			oldJTI:         e.es256.setOf(t, old),
			futureJTI:      e.es256.setOf(t, future),
		}, true),
		pollResponse(t, map[string]any{secondJTI: e.eddsa.setOf(t, second)}, false),
		pollResponse(t, map[string]any{}, false),
	)

	tokenFile := filepath.Join(t.TempDir(), "poll-token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-poll-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := slices.Clone(e.cfg)
	cfg[0].PollEndpoint = tx.URL
	cfg[0].PollInterval = 20 * time.Millisecond
	cfg[0].PollTokenFile = tokenFile
	recv, err := NewReceiver(context.Background(), cfg, e.rev, Options{Logger: testLogger(t), Now: e.clock.Now, PollMaxEvents: 10})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error)
	go func() { stopped <- recv.Run(ctx) }()
	select {
	case <-tx.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the transmitter was not polled three times")
	}
	cancel()
	select {
	case err := <-stopped:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop with its context")
	}

	reqs, auth := tx.seen()
	if len(reqs) < 3 {
		t.Fatalf("%d polls, want at least 3", len(reqs))
	}
	for i, a := range auth {
		if a != "Bearer s3cret-poll-token" {
			t.Errorf("poll %d: Authorization %q", i+1, a)
		}
	}
	first := reqs[0]
	if first.MaxEvents != 10 || !first.ReturnImmediately || len(first.Ack) != 0 || len(first.SetErrs) != 0 {
		t.Errorf("first poll = %+v, want maxEvents 10, returnImmediately, nothing to acknowledge", first)
	}
	// The second poll came at once (moreAvailable) and acknowledges the
	// first batch.
	if got := reqs[1].Ack; !slices.Equal(got, []string{goodJTI}) {
		t.Errorf("second poll ack = %v, want [%s]", got, goodJTI)
	}
	wantErrs := map[string]string{
		badJTI:         CodeInvalidAudience,
		foreignJTI:     CodeAccessDenied,
		"delivered-as": CodeInvalidRequest,
		otherJTI:       CodeInvalidIssuer,
		"not-a-string": CodeInvalidRequest,
		oldJTI:         CodeInvalidRequest,
		futureJTI:      CodeInvalidRequest,
	}
	if len(reqs[1].SetErrs) != len(wantErrs) {
		t.Errorf("second poll setErrs = %+v, want %v", reqs[1].SetErrs, wantErrs)
	}
	for jti, code := range wantErrs {
		if got := reqs[1].SetErrs[jti]; got.Err != code || got.Description == "" {
			t.Errorf("setErrs[%s] = %+v, want err %s with a description", jti, got, code)
		}
	}
	if got := reqs[1].SetErrs[oldJTI].Description; got != "the SET is too old" {
		t.Errorf("setErrs of a SET older than max_age: description %q", got)
	}
	if got := reqs[2].Ack; !slices.Equal(got, []string{secondJTI}) || len(reqs[2].SetErrs) != 0 {
		t.Errorf("third poll = %+v, want ack [%s] only", reqs[2], secondJTI)
	}

	// The polled events took effect.
	before := e.clock.Now().Add(-time.Hour)
	if _, ok := e.revoked(t, store.TokenRef{Issuer: tokIssuerA, Subject: "polled-user", IssuedAt: before}); !ok {
		t.Error("polled credential-compromise did not revoke the subject")
	}
	if _, ok := e.revoked(t, store.TokenRef{Issuer: tokIssuerB, Subject: "x", SessionID: "polled-sid", IssuedAt: before}); !ok {
		t.Error("polled session-revoked did not revoke the session")
	}
	for _, sub := range []string{"polled-user-2", "polled-user-4", "polled-user-6", "polled-user-7"} {
		if r, ok := e.revoked(t, store.TokenRef{Issuer: tokIssuerA, Subject: sub, IssuedAt: before}); ok {
			t.Errorf("refused SET revoked %s: %+v", sub, r)
		}
	}
}

func TestPollDoesNotAcknowledgeWhatItCouldNotRecord(t *testing.T) {
	e := newEnv(t)
	c := e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, "u"))
	jti := c["jti"].(string)
	set := e.es256.setOf(t, c)
	tx := newPollTransmitter(t,
		pollResponse(t, map[string]any{jti: set}, false),
		pollResponse(t, map[string]any{jti: set}, false),
		pollResponse(t, map[string]any{}, false),
	)
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	cfg := slices.Clone(e.cfg)
	cfg[0].PollEndpoint = tx.URL
	cfg[0].PollInterval = 10 * time.Millisecond
	recv, err := NewReceiver(context.Background(), cfg, e.rev, Options{Logger: testLogger(t), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = recv.Run(ctx) }()
	select {
	case <-tx.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the transmitter was not polled three times")
	}
	cancel()
	reqs, auth := tx.seen()
	for i, r := range reqs[:3] {
		if len(r.Ack) != 0 || len(r.SetErrs) != 0 {
			t.Errorf("poll %d acknowledges %+v although the store is down", i+1, r)
		}
		if auth[i] != "" {
			t.Errorf("poll %d sent a credential %q although none is configured", i+1, auth[i])
		}
	}
}

func TestPollSendsPendingAcknowledgementsWhenStopped(t *testing.T) {
	e := newEnv(t)
	c := e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, "u-final"))
	jti := c["jti"].(string)
	// The prompt acknowledgement fails (the answer is not JSON), so the
	// acknowledgement is still pending when polling stops.
	tx := newPollTransmitter(t, pollResponse(t, map[string]any{jti: e.es256.setOf(t, c)}, false), "not json")
	cfg := slices.Clone(e.cfg)
	cfg[0].PollEndpoint = tx.URL
	cfg[0].PollInterval = time.Hour
	recv, err := NewReceiver(context.Background(), cfg, e.rev, Options{Logger: testLogger(t), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = recv.Run(ctx); close(stopped) }()
	<-tx.done
	cancel()
	<-stopped
	reqs, _ := tx.seen()
	if len(reqs) != 3 {
		t.Fatalf("%d polls, want the first, the failed prompt acknowledgement and a final one", len(reqs))
	}
	if last := reqs[2]; last.MaxEvents != 0 || !slices.Equal(last.Ack, []string{jti}) {
		t.Errorf("final poll = %+v, want maxEvents 0 and ack [%s]", last, jti)
	}
}

func TestPollAcknowledgesAppliedSETsAtOnce(t *testing.T) {
	// One SET, nothing more available, and a poll interval of an hour: the
	// acknowledgement must not wait for the next regular poll, or a
	// transmitter with a shorter redelivery timer sends the SET again.
	e := newEnv(t)
	c := e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, "u-prompt"))
	jti := c["jti"].(string)
	tx := newPollTransmitter(t,
		pollResponse(t, map[string]any{jti: e.es256.setOf(t, c)}, false),
		pollResponse(t, map[string]any{}, false),
	)
	cfg := slices.Clone(e.cfg)
	cfg[0].PollEndpoint = tx.URL
	cfg[0].PollInterval = time.Hour
	recv, err := NewReceiver(context.Background(), cfg, e.rev, Options{Logger: testLogger(t), Now: e.clock.Now, PollMaxEvents: 5})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = recv.Run(ctx); close(stopped) }()
	select {
	case <-tx.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the applied SET was not acknowledged before the next regular poll")
	}
	cancel()
	<-stopped
	reqs, _ := tx.seen()
	// Stopping while the prompt acknowledgement is in flight sends it once
	// more, on a final acknowledge-only poll: the receiver cannot know it
	// arrived.
	if len(reqs) == 3 && reqs[2].MaxEvents == 0 && slices.Equal(reqs[2].Ack, []string{jti}) {
		reqs = reqs[:2]
	}
	if len(reqs) != 2 {
		t.Fatalf("%d polls, want the first and the prompt acknowledgement only: %+v", len(reqs), reqs)
	}
	if got := reqs[1]; !slices.Equal(got.Ack, []string{jti}) || !got.ReturnImmediately || got.MaxEvents != 5 {
		t.Errorf("second poll = %+v, want ack [%s], returnImmediately, maxEvents 5", got, jti)
	}
}

func TestPollPromptlyIsBoundedWhenTheTransmitterAlwaysHasSETs(t *testing.T) {
	// Every answer carries a new SET (and says nothing more is available):
	// acknowledging each at once must not become a hot loop. After
	// maxPromptPolls polls in a row the last one only acknowledges, and the
	// next waits for the poll interval.
	e := newEnv(t)
	var responses []string
	var jtis []string
	for i := range maxPromptPolls + 4 {
		c := e.claims(EventAccountDisabled, map[string]any{}, issSub(tokIssuerA, fmt.Sprintf("u-loop-%d", i)))
		jtis = append(jtis, c["jti"].(string))
		responses = append(responses, pollResponse(t, map[string]any{c["jti"].(string): e.es256.setOf(t, c)}, false))
	}
	tx := newPollTransmitter(t, responses...)
	cfg := slices.Clone(e.cfg)
	cfg[0].PollEndpoint = tx.URL
	cfg[0].PollInterval = time.Hour
	recv, err := NewReceiver(context.Background(), cfg, e.rev, Options{Logger: testLogger(t), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { _ = recv.Run(ctx); close(stopped) }()
	// The loop ends with an acknowledgement-only poll; wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		reqs, _ := tx.seen()
		if len(reqs) > maxPromptPolls {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d polls, want %d", len(reqs), maxPromptPolls+1)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Give a hot loop the chance to show itself before stopping.
	time.Sleep(100 * time.Millisecond)
	cancel()
	<-stopped
	reqs, _ := tx.seen()
	// maxPromptPolls polls asking for SETs, then one that only
	// acknowledges; the SET it received is acknowledged when polling stops.
	if len(reqs) != maxPromptPolls+2 {
		t.Fatalf("%d polls, want %d in a row, then the final acknowledgement", len(reqs), maxPromptPolls+2)
	}
	for i := 1; i < maxPromptPolls; i++ {
		if !slices.Equal(reqs[i].Ack, []string{jtis[i-1]}) || reqs[i].MaxEvents == 0 {
			t.Errorf("poll %d = %+v, want ack [%s] and SETs asked for", i+1, reqs[i], jtis[i-1])
		}
	}
	if last := reqs[maxPromptPolls]; last.MaxEvents != 0 || !slices.Equal(last.Ack, []string{jtis[maxPromptPolls-1]}) {
		t.Errorf("poll %d = %+v, want an acknowledgement only", maxPromptPolls+1, last)
	}
}

func TestRunWithoutPollEndpointsReturns(t *testing.T) {
	e := newEnv(t)
	done := make(chan error)
	go func() { done <- e.recv.Run(context.Background()) }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run blocked with nothing to poll")
	}
}
