package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
)

// kind is a class of request of the mix, with the answer it must get.
type kind int

const (
	kindWarm    kind = iota // a reused bearer token: allow
	kindFresh               // a token never seen before: allow
	kindDPoP                // a bound token with a fresh proof: allow
	kindInvalid             // wrong audience or expired: deny
	kindRevoked             // a token of a subject revoked and acknowledged: deny
	kinds
)

var kindNames = [kinds]string{"warm bearer", "fresh bearer", "DPoP", "invalid", "revoked subject"}

// mix is the share of each kind, in twentieths.
var mix = [20]kind{
	kindWarm, kindWarm, kindWarm, kindWarm, kindWarm, kindWarm, kindWarm, kindWarm, kindWarm, kindWarm,
	kindWarm, kindWarm, kindWarm, kindFresh, kindDPoP, kindDPoP, kindDPoP, kindInvalid, kindInvalid, kindRevoked,
}

const (
	warmTokens  = 1000
	dpopTokens  = 200
	revokeEvery = time.Second
	setEvery    = 5 * time.Second
	editEvery   = 30 * time.Second
	sampleEvery = 30 * time.Second
	// coldStart is how long after a pdp is ready its answers still count
	// to its cold start: a replica that starts under the full rate
	// evaluates every warm token at once and may answer 503 overloaded
	// until it reaches its steady state, which it must within 5 s (the
	// load benchmark's herd scenario measures it). The first start and
	// the restart are both cold starts; the restart's window opens at the
	// kill, and also holds the connections of the killed process failing
	// late.
	coldStart = 5 * time.Second
)

// revoked is a subject whose revocation the pdp acknowledged, with two
// tokens minted before it: token, sent by the traffic while the revocation
// is recent, and final, sent by the check at the end (see mintBefore).
type revoked struct {
	sub, token, final, via string
}

// soak is one run in progress.
type soak struct {
	env    *env
	o      options
	log    *slog.Logger
	client *http.Client

	warm    []string
	dpop    []string
	provers []*dpoptest.Prover
	invalid []string

	mu      sync.Mutex
	revoked []revoked

	// cold is set for coldStart after the first start, and from the kill
	// until coldStart after the restarted pdp is ready.
	cold   atomic.Bool
	counts counts
}

// counts are the answers seen, by kind and outcome.
type counts struct {
	mu         sync.Mutex
	sent       [kinds]int
	right      [kinds]int
	wrong      [kinds]int
	kind5xx    [kinds]int // status5xx by kind
	status5xx  int
	status4xx  int
	netErrors  int
	cold       int // answers (or failures) while the pdp was cold
	skipped    int // sends the generator could not start (every worker busy)
	wrongSeen  []string
	admin      [2]int // revocations acknowledged, refused
	sets       [2]int // SETs acknowledged, refused
	edits      int
	revisions  map[string]bool
	other5xx   map[int]int
	reasons5xx map[string]int
	// start is when the traffic began; windows5xx counts the 5xx answers
	// by 10-second window since then, so that bursts show when they came.
	start      time.Time
	windows5xx map[int]int
}

func newSoak(e *env, o options, log *slog.Logger) *soak {
	tr := &http.Transport{MaxIdleConns: o.Workers, MaxIdleConnsPerHost: o.Workers, IdleConnTimeout: time.Minute}
	s := &soak{env: e, o: o, log: log, client: &http.Client{Transport: tr, Timeout: 5 * time.Second}}
	s.counts.revisions = map[string]bool{}
	s.counts.other5xx = map[int]int{}
	s.counts.reasons5xx = map[string]int{}
	s.counts.windows5xx = map[int]int{}
	return s
}

// mint returns a valid access token for sub, changed by extra.
func mint(iss *devissuer.Issuer, sub string, extra map[string]any) (string, error) {
	now := time.Now()
	claims := map[string]any{
		"aud": audience, "sub": sub, "client_id": clientID, "scope": "openid accounts:read",
		"iat": now.Unix(), "exp": now.Add(tokenTTL).Unix(),
		"authorization_details": []any{map[string]any{"type": "account_information", "actions": []any{"read"}}},
	}
	for k, v := range extra {
		claims[k] = v
	}
	return iss.Mint(claims)
}

func (s *soak) prepare() error {
	iss := s.env.issuer
	for i := range warmTokens {
		tok, err := mint(iss, fmt.Sprintf("warm-%d", i), nil)
		if err != nil {
			return err
		}
		s.warm = append(s.warm, tok)
	}
	for i := range dpopTokens {
		p, err := dpoptest.NewProver("ES256")
		if err != nil {
			return err
		}
		tok, err := mint(iss, fmt.Sprintf("dpop-%d", i), map[string]any{"cnf": map[string]any{"jkt": p.JKT()}})
		if err != nil {
			return err
		}
		s.provers, s.dpop = append(s.provers, p), append(s.dpop, tok)
	}
	for _, extra := range []map[string]any{
		{"aud": "https://other.example.com"},
		{"iat": time.Now().Add(-3 * time.Hour).Unix(), "exp": time.Now().Add(-2 * time.Hour).Unix()},
	} {
		tok, err := mint(iss, "invalid", extra)
		if err != nil {
			return err
		}
		s.invalid = append(s.invalid, tok)
	}
	return nil
}

// recentRevocations is how many of the latest revocations the traffic
// sends tokens of: those acknowledged within half the fresh tokens'
// lifetime at most (one a second or more), so that each token sent is
// still valid and is denied for its subject's revocation alone, and the
// number of distinct tokens the pdp sees is the same all run.
func (s *soak) recentRevocations() int {
	return max(1, int(s.o.FreshTTL/2/revokeEvery))
}

// decideBody is the body of POST /v1/decide for one request of the mix.
func (s *soak) decideBody(k kind, seq uint64) ([]byte, error) {
	headers := map[string]string{"user-agent": userAgent}
	switch k {
	case kindWarm:
		headers["authorization"] = "Bearer " + s.warm[seq%warmTokens]
	case kindFresh:
		now := time.Now()
		tok, err := mint(s.env.issuer, fmt.Sprintf("fresh-%d", seq), map[string]any{"iat": now.Unix(), "exp": now.Add(s.o.FreshTTL).Unix()})
		if err != nil {
			return nil, err
		}
		headers["authorization"] = "Bearer " + tok
	case kindDPoP:
		i := seq % dpopTokens
		proof, err := s.provers[i].Proof("GET", apiURL, s.dpop[i])
		if err != nil {
			return nil, err
		}
		headers["authorization"], headers["dpop"] = "DPoP "+s.dpop[i], proof
	case kindInvalid:
		headers["authorization"] = "Bearer " + s.invalid[seq%uint64(len(s.invalid))]
	case kindRevoked:
		s.mu.Lock()
		recent := s.revoked[max(0, len(s.revoked)-s.recentRevocations()):]
		r := recent[rand.IntN(len(recent))]
		s.mu.Unlock()
		headers["authorization"] = "Bearer " + r.token
	}
	return json.Marshal(map[string]any{"request": map[string]any{
		"method": "GET", "url": apiURL, "headers": headers, "remote_ip": remoteIP,
	}})
}

// decision is the part of an answer the soak checks.
type decision struct {
	Allow   bool `json:"allow"`
	Status  int  `json:"status"`
	Reasons []struct {
		Code string `json:"code"`
	} `json:"reasons"`
}

// send asks for one decision and counts the answer.
func (s *soak) send(ctx context.Context, k kind, seq uint64) {
	body, err := s.decideBody(k, seq)
	if err != nil {
		s.log.Error("building a request", "error", err)
		return
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.env.addr+"/v1/decide", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	cold := s.cold.Load()
	c := &s.counts
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		c.sent[k]++
		if cold {
			c.cold++
		} else {
			c.netErrors++
		}
		return
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	cold = cold || s.cold.Load()
	var d decision
	_ = json.Unmarshal(raw, &d)
	// A decision the gateway must answer with a 5xx (overloaded, a policy
	// error, an unavailable state) counts as one, whatever HTTP status
	// carried it: /v1/decide answers every decision with 200.
	status := resp.StatusCode
	if status == http.StatusOK && d.Status >= 500 {
		status = d.Status
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent[k]++
	switch {
	case cold && status != http.StatusOK:
		c.cold++
		return
	case status >= 500:
		c.status5xx++
		c.kind5xx[k]++
		c.other5xx[status]++
		if !c.start.IsZero() {
			c.windows5xx[int(time.Since(c.start)/(10*time.Second))]++
		}
		if len(d.Reasons) > 0 {
			c.reasons5xx[d.Reasons[0].Code]++
		}
		return
	case resp.StatusCode != http.StatusOK:
		c.status4xx++
		return
	}
	want := k == kindWarm || k == kindFresh || k == kindDPoP
	if d.Allow == want && (k != kindRevoked || len(d.Reasons) > 0 && d.Reasons[0].Code == "subject_revoked") {
		c.right[k]++
		return
	}
	c.wrong[k]++
	if len(c.wrongSeen) < 10 {
		c.wrongSeen = append(c.wrongSeen, fmt.Sprintf("%s: %s", kindNames[k], bytes.TrimSpace(raw)))
	}
}

// traffic sends the mix at the configured rate until ctx ends: an open
// loop that starts a request every 1/rate seconds on a free worker, and
// counts a send it could not start (every worker busy) instead of
// slowing down.
func (s *soak) traffic(ctx context.Context) {
	jobs := make(chan uint64, s.o.Workers)
	var wg sync.WaitGroup
	for range s.o.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := range jobs {
				k := mix[seq%uint64(len(mix))]
				if k == kindRevoked {
					s.mu.Lock()
					none := len(s.revoked) == 0
					s.mu.Unlock()
					if none {
						k = kindWarm
					}
				}
				s.send(ctx, k, seq)
			}
		}()
	}
	start := time.Now()
	var seq uint64
	tick := time.NewTicker(10 * time.Millisecond)
	defer func() {
		tick.Stop()
		close(jobs)
		wg.Wait()
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			due := uint64(now.Sub(start).Seconds() * s.o.Rate)
			for ; seq < due; seq++ {
				select {
				case jobs <- seq:
				default:
					s.counts.mu.Lock()
					s.counts.skipped++
					s.counts.mu.Unlock()
				}
			}
		}
	}
}
