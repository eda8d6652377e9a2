package dpop_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/dpop"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
)

var (
	nonceSecret = bytes.Repeat([]byte{0x42}, 32)
	otherSecret = bytes.Repeat([]byte{0x43}, 32)
)

func newNonces(t testing.TB, secret []byte, ttl time.Duration) *dpop.Nonces {
	t.Helper()
	n, err := dpop.NewNonces(secret, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestNewNonces(t *testing.T) {
	if _, err := dpop.NewNonces(make([]byte, 31), time.Minute); err == nil {
		t.Error("fail/secret of 31 bytes accepted")
	}
	if _, err := dpop.NewNonces(nonceSecret, 0); err == nil {
		t.Error("fail/zero ttl accepted")
	}
	secret := bytes.Clone(nonceSecret)
	n := newNonces(t, secret, time.Minute)
	now := time.Now()
	nonce := n.Issue(now)
	secret[0] ^= 1 // the caller's slice is copied
	if !n.Valid(nonce, now) {
		t.Error("ok/nonce invalid after the caller changed its secret slice")
	}
}

func TestNoncesValid(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	n := newNonces(t, nonceSecret, 5*time.Minute)
	replica := newNonces(t, nonceSecret, 5*time.Minute)
	other := newNonces(t, otherSecret, 5*time.Minute)
	nonce := n.Issue(now)

	forged := func(f func(raw []byte)) string {
		raw, err := base64.RawURLEncoding.DecodeString(nonce)
		if err != nil {
			t.Fatal(err)
		}
		f(raw)
		return base64.RawURLEncoding.EncodeToString(raw)
	}
	cases := []struct {
		name  string
		n     *dpop.Nonces
		nonce string
		at    time.Time
		want  bool
	}{
		{"ok/just issued", n, nonce, now, true},
		{"ok/another replica with the same secret", replica, nonce, now.Add(time.Minute), true},
		{"ok/at the end of the ttl", n, nonce, now.Add(5 * time.Minute), true},
		{"ok/issued by a replica whose clock is 2s ahead", n, nonce, now.Add(-2 * time.Second), true},
		{"fail/expired", n, nonce, now.Add(5*time.Minute + time.Second), false},
		{"fail/from the future", n, nonce, now.Add(-time.Minute), false},
		{"fail/other secret", other, nonce, now, false},
		{"fail/forged issue time", n, forged(func(r []byte) { r[7]++ }), now, false},
		{"fail/forged mac", n, forged(func(r []byte) { r[len(r)-1] ^= 1 }), now, false},
		{"fail/truncated", n, nonce[:len(nonce)-1], now, false},
		{"fail/padded", n, nonce + "=", now, false},
		{"fail/empty", n, "", now, false},
		{"fail/garbage of the right length", n, "********************************", now, false},
		{"fail/nil nonce source", nil, nonce, now, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.n.Valid(tc.nonce, tc.at); got != tc.want {
				t.Fatalf("Valid = %v, want %v", got, tc.want)
			}
		})
	}
	if n.Issue(now.Add(time.Second)) == nonce {
		t.Error("nonces of different seconds are equal")
	}
}

func TestVerifyNonces(t *testing.T) {
	p := prover(t, "ES256")
	nonces := newNonces(t, nonceSecret, time.Minute)
	v := newVerifier(t, newMemReplay(), dpop.Options{Nonces: nonces})
	ctx := context.Background()
	now := time.Now()

	cases := []struct {
		name string
		opts []dpoptest.ProofOption
		code string
		msg  string
	}{
		{name: "ok/fresh nonce", opts: []dpoptest.ProofOption{dpoptest.WithNonce(nonces.Issue(now))}},
		{name: "ok/nonce from a replica", opts: []dpoptest.ProofOption{
			dpoptest.WithNonce(newNonces(t, nonceSecret, time.Minute).Issue(now.Add(-30 * time.Second)))}},
		{name: "fail/D12 missing nonce once required", code: dpop.CodeNonceRequired, msg: "must carry a server nonce"},
		{name: "fail/D12 stale nonce", code: dpop.CodeNonceRequired, msg: "stale",
			opts: []dpoptest.ProofOption{dpoptest.WithNonce(nonces.Issue(now.Add(-2 * time.Minute)))}},
		{name: "fail/D12 nonce of another secret", code: dpop.CodeNonceRequired, msg: "stale",
			opts: []dpoptest.ProofOption{dpoptest.WithNonce(newNonces(t, otherSecret, time.Minute).Issue(now))}},
		{name: "fail/D12 made-up nonce", code: dpop.CodeNonceRequired, msg: "stale",
			opts: []dpoptest.ProofOption{dpoptest.WithNonce("client-chosen")}},
		{name: "fail/D12 an invalid proof is invalid before the nonce is looked at", code: dpop.CodeProofInvalid, msg: "htm",
			opts: []dpoptest.ProofOption{dpoptest.WithClaim("htm", "PUT")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := v.Verify(ctx, request(t, mustProof(t, p, "GET", testURL, testToken, tc.opts...)))
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			wantCode(t, err, tc.code, tc.msg)
		})
	}
}

// TestVerifyNonceChallengeRetry walks the RFC 9449 §8 exchange: a proof
// without nonce is refused with use_dpop_nonce, and the client's retry with
// the nonce it was given succeeds.
func TestVerifyNonceChallengeRetry(t *testing.T) {
	p := prover(t, "EdDSA")
	nonces := newNonces(t, nonceSecret, time.Minute)
	v := newVerifier(t, openBolt(t), dpop.Options{Nonces: nonces})
	ctx := context.Background()

	_, err := v.Verify(ctx, request(t, mustProof(t, p, "GET", testURL, testToken)))
	wantCode(t, err, dpop.CodeNonceRequired, "")
	fresh := v.Nonces().Issue(time.Now())

	if _, err := v.Verify(ctx, request(t, mustProof(t, p, "GET", testURL, testToken, dpoptest.WithNonce(fresh)))); err != nil {
		t.Fatalf("retry with the nonce: %v", err)
	}
}
