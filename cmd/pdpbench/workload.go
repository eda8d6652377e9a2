package main

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"time"

	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
)

// What both peers are configured for and every request asks.
const (
	issuerURL = "https://as.example.com"
	audience  = "https://api.example.com"
	scope     = "accounts:read"
	method    = "GET"
	decideURL = "https://api.example.com/v1/accounts/42"
	path      = "/v1/accounts/42"
	remoteIP  = "203.0.113.7"
	userAgent = "pdpbench/1"
	clientID  = "bench-app"
	// tokenTTL keeps tokens inside both policies' lifetime cap (1h).
	tokenTTL = 30 * time.Minute
	// warmTokens is the number of distinct tokens the warm scenarios reuse.
	warmTokens = 1000
)

// credential is what one request presents: a token and, for DPoP, a proof.
type credential struct {
	Token string
	Proof string
}

// workload hands out the credentials of a scenario.
type workload struct {
	sc     scenario
	issuer *devissuer.Issuer
	// warm holds the reused tokens (warm and revoked scenarios); for DPoP,
	// the bound tokens, each with its prover.
	warm    []credential
	provers []*dpoptest.Prover
}

func newWorkload(iss *devissuer.Issuer, sc scenario) (*workload, error) {
	w := &workload{sc: sc, issuer: iss}
	if sc.Fresh {
		return w, nil
	}
	w.warm = make([]credential, warmTokens)
	if sc.DPoP {
		w.provers = make([]*dpoptest.Prover, warmTokens)
	}
	err := parallel(warmTokens, func(i int) error {
		extra := map[string]any{}
		if sc.DPoP {
			p, err := dpoptest.NewProver("ES256")
			if err != nil {
				return err
			}
			w.provers[i] = p
			extra["cnf"] = map[string]any{"jkt": p.JKT()}
		}
		tok, err := w.mint(i, extra)
		w.warm[i] = credential{Token: tok}
		return err
	})
	return w, err
}

// mint returns a valid access token for user n, changed by extra.
func (w *workload) mint(n int, extra map[string]any) (string, error) {
	now := time.Now()
	claims := map[string]any{
		"aud":       audience,
		"sub":       fmt.Sprintf("bench-user-%d", n),
		"client_id": clientID,
		"scope":     "openid " + scope,
		"iat":       now.Unix(),
		"exp":       now.Add(tokenTTL).Unix(),
		"authorization_details": []any{
			map[string]any{"type": "account_information", "actions": []any{"read"}},
		},
	}
	for k, v := range extra {
		claims[k] = v
	}
	return w.issuer.Mint(claims)
}

// credentials returns n credentials for one step: the warm tokens in turn,
// or n fresh tokens, or the bound tokens each with a fresh proof.
func (w *workload) credentials(n int) ([]credential, error) {
	switch {
	case w.sc.Fresh:
		out := make([]credential, n)
		err := parallel(n, func(i int) error {
			tok, err := w.mint(i, nil)
			out[i] = credential{Token: tok}
			return err
		})
		return out, err
	case w.sc.DPoP:
		out := make([]credential, n)
		err := parallel(n, func(i int) error {
			k := i % len(w.warm)
			proof, err := w.provers[k].Proof(method, decideURL, w.warm[k].Token)
			out[i] = credential{Token: w.warm[k].Token, Proof: proof}
			return err
		})
		return out, err
	default:
		return w.warm, nil
	}
}

// wrongAudience is a credential every peer must deny.
func (w *workload) wrongAudience() (credential, error) {
	tok, err := w.mint(0, map[string]any{"aud": "https://other.example.com"})
	return credential{Token: tok}, err
}

// parallel runs fn(0..n-1) on every core and returns the first error.
func parallel(n int, fn func(i int) error) error {
	workers := runtime.GOMAXPROCS(0)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for k := range workers {
		wg.Go(func() {
			for i := k; i < n; i += workers {
				if ctx.Err() != nil {
					return
				}
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}
