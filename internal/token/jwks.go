package token

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"mime"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// JWKS refresh timing.
const (
	// MissRefreshInterval is the least time between two JWKS fetches of one
	// issuer caused by tokens (an unknown kid): a flood of made-up kids costs
	// at most one fetch per interval (J2).
	MissRefreshInterval = 30 * time.Second
	// jwksFetchTimeout bounds one fetch, whoever waits for it.
	jwksFetchTimeout = 10 * time.Second
	// Backoff of Run after a failed fetch.
	minRetryDelay = time.Second
	maxRetryDelay = time.Minute
)

// jwksFetch is one fetch in flight; waiters share its outcome.
type jwksFetch struct {
	done chan struct{}
	err  error
}

// fetchJWKS fetches, checks and parses the key set at uri.
func fetchJWKS(ctx context.Context, client *http.Client, uri string) (*keySet, []skippedKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("building JWKS request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("fetching JWKS: %w", err)
	}
	defer drainClose(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("fetching JWKS: unexpected status %d", resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil ||
		(mt != "application/json" && mt != "application/jwk-set+json") {
		return nil, nil, fmt.Errorf("fetching JWKS: unexpected content type %q", resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading JWKS: %w", err)
	}
	ks, skipped, err := parseKeySet(body)
	if err != nil {
		return nil, skipped, err
	}
	return ks, skipped, nil
}

// readJWKSFile loads a local key set.
func readJWKSFile(path string) (*keySet, []skippedKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("opening JWKS file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxJWKSSize+1))
	if err != nil {
		return nil, nil, fmt.Errorf("reading JWKS file: %w", err)
	}
	return parseKeySet(data)
}

// drainClose reads a little of what is left, so the connection can be
// reused, and closes the body.
func drainClose(body io.ReadCloser) {
	_, _ = io.Copy(io.Discard, io.LimitReader(body, 4<<10))
	_ = body.Close()
}

// refresh fetches is's JWKS unless a fetch is already running, in which
// case it joins that one. With limited set, it does nothing when the last
// fetch started less than MissRefreshInterval ago. The fetch runs detached
// from ctx (bounded by jwksFetchTimeout) so that a caller that gives up
// does not waste it; refresh returns when the fetch ends or ctx is done.
func (v *Verifier) refresh(ctx context.Context, is *issuer, limited bool) error {
	is.mu.Lock()
	f := is.inflight
	if f == nil {
		now := v.now()
		if limited && !is.lastFetch.IsZero() && now.Before(is.lastFetch.Add(MissRefreshInterval)) {
			is.mu.Unlock()
			return errRefreshLimited
		}
		is.lastFetch = now
		f = &jwksFetch{done: make(chan struct{})}
		is.inflight = f
		trigger := TriggerScheduled
		if limited {
			trigger = TriggerUnknownKey
		}
		go v.runFetch(context.WithoutCancel(ctx), is, f, trigger)
	}
	is.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

var errRefreshLimited = errors.New("JWKS refresh rate-limited")

func (v *Verifier) runFetch(ctx context.Context, is *issuer, f *jwksFetch, trigger string) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	ks, skipped, err := fetchJWKS(ctx, v.client, is.cfg.JWKSURI)
	v.logSkipped(is, skipped)
	is.setRefused(ks, skipped, err)
	if err != nil {
		f.err = fmt.Errorf("issuer %s: %w", is.cfg.Issuer, err)
		if is.keys.Load() == nil {
			v.log.Warn("JWKS fetch failed: no keys loaded yet, so this issuer's tokens are refused until a fetch succeeds", "issuer", is.cfg.Issuer, "error", err)
		} else {
			v.log.Warn("JWKS refresh failed, keeping the previous keys", "issuer", is.cfg.Issuer, "error", err)
		}
	} else {
		is.keys.Store(ks)
		v.log.Debug("JWKS loaded", "issuer", is.cfg.Issuer, "keys", len(ks.keys))
	}
	is.mu.Lock()
	is.inflight = nil
	is.lastErr = err
	is.mu.Unlock()
	v.obs.JWKSFetched(trigger, err)
	close(f.done)
}

// logSkipped logs the keys left out of a JWKS: a refused (weak or invalid)
// key at WARN, one this issuer has no use for at DEBUG.
func (v *Verifier) logSkipped(is *issuer, skipped []skippedKey) {
	for _, s := range skipped {
		if s.Refused {
			v.log.Warn("JWKS key refused", "issuer", is.cfg.Issuer, "index", s.Index, "kid", s.KID, "reason", s.Reason)
			continue
		}
		v.log.Debug("JWKS key skipped", "issuer", is.cfg.Issuer, "index", s.Index, "kid", s.KID, "reason", s.Reason)
	}
}

// setRefused remembers the keys left out of the last JWKS document read,
// for Status. A fetch that got no document keeps the previous list.
func (is *issuer) setRefused(ks *keySet, skipped []skippedKey, err error) {
	if err != nil && len(skipped) == 0 && ks == nil {
		return
	}
	refused := make([]RefusedKey, 0, len(skipped))
	for _, s := range skipped {
		refused = append(refused, RefusedKey(s))
	}
	is.mu.Lock()
	is.refused = refused
	is.mu.Unlock()
}

// Run keeps the key sets of the jwks_uri issuers fresh until ctx is done:
// a first fetch retried with exponential backoff, then one fetch every
// JWKSRefresh. A failed refresh keeps the previous keys and is retried
// with backoff. It also removes expired tokens from the verification cache
// every CacheSweepEvery. Run blocks until ctx is done and its loops have ended;
// call it once, in its own goroutine. Verify works without Run too: the
// first token of an issuer then loads its keys (rate-limited like an
// unknown kid).
func (v *Verifier) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { v.sweepLoop(ctx) })
	for _, is := range v.issuers {
		if is.cfg.JWKSURI != "" {
			wg.Go(func() { v.refreshLoop(ctx, is) })
		}
	}
	<-ctx.Done()
	wg.Wait()
}

// CacheSweepEvery is how often Run removes the expired tokens from the
// cache.
const CacheSweepEvery = 30 * time.Second

func (v *Verifier) sweepLoop(ctx context.Context) {
	t := time.NewTicker(CacheSweepEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			v.cache.sweep(v.now())
		}
	}
}

func (v *Verifier) refreshLoop(ctx context.Context, is *issuer) {
	delay := minRetryDelay
	for {
		var wait time.Duration
		if err := v.refresh(ctx, is, false); err != nil {
			if ctx.Err() != nil {
				return
			}
			// Jitter keeps many instances from retrying in step.
			wait = delay/2 + rand.N(delay/2+1)
			delay = min(2*delay, maxRetryDelay)
		} else {
			wait, delay = is.cfg.JWKSRefresh, minRetryDelay
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Ready reports nil once every issuer with a JWKS has a loaded key set,
// else an error naming the issuers still without keys.
func (v *Verifier) Ready() error {
	var missing []string
	for _, is := range v.issuers {
		if (is.cfg.JWKSURI != "" || is.cfg.JWKSFile != "") && is.keys.Load() == nil {
			missing = append(missing, is.cfg.Issuer)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s", ErrNotReady, strings.Join(missing, ", "))
	}
	return nil
}

// IssuerStatus describes one issuer's keys, for status pages.
type IssuerStatus struct {
	Issuer string `json:"issuer"`
	// Source is where its keys come from: "jwks_uri", "jwks_file" or
	// "introspection" (no keys).
	Source string `json:"source"`
	// Loaded reports a usable key set; Keys counts its keys.
	Loaded bool `json:"loaded"`
	Keys   int  `json:"keys"`
	// LastFetch is when the last JWKS fetch started (jwks_uri only).
	LastFetch time.Time `json:"last_fetch,omitzero"`
	// LastError is the error of the last fetch, empty after a success.
	LastError string `json:"last_error,omitempty"`
	// RefusedKeys are the entries of the last JWKS document read that are
	// not used: refused by the key check (weak or invalid) or of no use
	// for verifying tokens.
	RefusedKeys []RefusedKey `json:"refused_keys,omitempty"`
}

// RefusedKey is a JWKS entry left out, for status pages.
type RefusedKey struct {
	// Index is the entry's position in the document's "keys" array.
	Index int `json:"index"`
	// KID is the entry's "kid", empty when it has none.
	KID string `json:"kid,omitempty"`
	// Reason says why it is not used.
	Reason string `json:"reason"`
	// Refused reports a key the key check refused (weak or invalid), as
	// opposed to one of no use for verifying tokens (encryption,
	// symmetric, an unsupported type).
	Refused bool `json:"refused"`
}

// Status describes the keys of every issuer, in configuration order.
func (v *Verifier) Status() []IssuerStatus {
	out := make([]IssuerStatus, 0, len(v.issuers))
	for _, is := range v.issuers {
		s := IssuerStatus{Issuer: is.cfg.Issuer, Source: "introspection"}
		switch {
		case is.cfg.JWKSURI != "":
			s.Source = "jwks_uri"
		case is.cfg.JWKSFile != "":
			s.Source = "jwks_file"
		}
		if ks := is.keys.Load(); ks != nil {
			s.Loaded, s.Keys = true, len(ks.keys)
		}
		is.mu.Lock()
		s.LastFetch = is.lastFetch
		if is.lastErr != nil {
			s.LastError = is.lastErr.Error()
		}
		s.RefusedKeys = is.refused
		is.mu.Unlock()
		out = append(out, s)
	}
	return out
}

// ErrNotReady is wrapped by Ready while some issuer has no keys yet.
var ErrNotReady = errors.New("token: no JWKS loaded yet for issuers")
