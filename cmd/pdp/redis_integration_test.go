//go:build integration

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/tokenguard/pdp/internal/devissuer"
	"github.com/tokenguard/pdp/internal/dpop/dpoptest"
	"github.com/tokenguard/pdp/internal/redistest"
)

// replicaSet is several real pdp processes sharing one real redis-server:
// each its own data_dir and listener, the same issuer, policy and Redis.
type replicaSet struct {
	redis       *redistest.Server
	issuer      *devissuer.Issuer
	transmitter *devissuer.Issuer // a Shared Signals transmitter every replica trusts
	replicas    []*replica
}

type replica struct {
	addr, config string
	dir          string
	p            *pdpProcess
}

const issuerURL = "https://as.example.com"

func newReplicaSet(t *testing.T, n int, onUnavailable string) *replicaSet {
	t.Helper()
	return newReplicaSetWith(t, n, replicaSetup{onUnavailable: onUnavailable})
}

// replicaSetup is what newReplicaSetWith varies; zero fields take the
// defaults of newReplicaSet (decision_timeout 2s, store.redis.timeout 250ms).
type replicaSetup struct {
	onUnavailable                 string
	decisionTimeout, redisTimeout string
	maxFollowerLag                string // default 5s
	// redis, when set, is the store.redis addrs and master_name lines
	// (a cluster, Sentinels); otherwise a standalone redis-server is
	// started.
	redis string
}

func newReplicaSetWith(t *testing.T, n int, setup replicaSetup) *replicaSet {
	t.Helper()
	if setup.decisionTimeout == "" {
		setup.decisionTimeout = "2s"
	}
	if setup.redisTimeout == "" {
		setup.redisTimeout = "250ms"
	}
	if setup.maxFollowerLag == "" {
		setup.maxFollowerLag = "5s"
	}
	root := t.TempDir()
	rs := &replicaSet{}
	if setup.redis == "" {
		rs.redis = redistest.Start(t)
		setup.redis = "    addrs: [" + rs.redis.Addr() + "]"
	}
	var err error
	if rs.issuer, err = devissuer.New(issuerURL, "ES256"); err != nil {
		t.Fatal(err)
	}
	if rs.transmitter, err = devissuer.New("https://tx.example", "ES256"); err != nil {
		t.Fatal(err)
	}
	jwks, cred, txJWKS := filepath.Join(root, "jwks.json"), filepath.Join(root, "admin"), filepath.Join(root, "tx-jwks.json")
	for name, body := range map[string][]byte{jwks: rs.issuer.JWKS(), cred: []byte(adminCredential), txJWKS: rs.transmitter.JWKS()} {
		if err := os.WriteFile(name, body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	policyDir := policyWithData(t, guardrailData)
	for i := range n {
		r := &replica{addr: freeAddr(t), dir: filepath.Join(root, fmt.Sprint("replica-", i+1))}
		if err := os.MkdirAll(r.dir, 0o700); err != nil {
			t.Fatal(err)
		}
		r.config = filepath.Join(r.dir, "pdp.yaml")
		cfg := fmt.Sprintf(`listen: %s
data_dir: %s
decision_timeout: %s
log:
  level: warn
decision_logs:
  console: false
policy:
  dir: %s
admin:
  token_file: %s
issuers:
  - issuer: %s
    jwks_file: %s
    audiences: [%s, https://billing.example.com]
ssf:
  transmitters:
    - issuer: https://tx.example
      jwks_file: %s
      audience: https://pdp.example/ssf
      token_issuers: [%s]
store:
  backend: redis
  redis:
%s
    timeout: %s
    max_follower_lag: %s
  on_unavailable:
%s
`, r.addr, filepath.Join(r.dir, "data"), setup.decisionTimeout, policyDir, cred, issuerURL, jwks, testAudience, txJWKS, issuerURL, setup.redis, setup.redisTimeout, setup.maxFollowerLag, setup.onUnavailable)
		if err := os.WriteFile(r.config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		rs.replicas = append(rs.replicas, r)
	}
	for _, r := range rs.replicas {
		r.start(t)
	}
	return rs
}

// start runs the replica and waits until /readyz answers 200.
func (r *replica) start(t *testing.T) {
	t.Helper()
	r.p = startPDP(t, r.dir, "serve", "--config", r.config)
	for range 1500 {
		resp, err := http.Get("http://" + r.addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("replica %s never became ready\n%s", r.addr, r.p.stderr)
}

// stop ends the replica with SIGTERM and waits for it.
func (r *replica) stop(t *testing.T) {
	t.Helper()
	if err := r.p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	_ = r.p.cmd.Wait()
}

var decideClient = &http.Client{Timeout: 10 * time.Second}

// decide posts one decision request; extra overrides request members.
func (r *replica) decide(t testing.TB, headers map[string]any, extra map[string]any) decideResponse {
	t.Helper()
	d, err := r.tryDecide(headers, extra)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func (r *replica) tryDecide(headers map[string]any, extra map[string]any) (decideResponse, error) {
	req := map[string]any{"method": "GET", "url": "https://api.example.com/v1/accounts/42", "headers": headers}
	for k, v := range extra {
		req[k] = v
	}
	body, _ := json.Marshal(map[string]any{"request": req})
	resp, err := decideClient.Post("http://"+r.addr+"/v1/decide", "application/json", bytes.NewReader(body))
	if err != nil {
		return decideResponse{}, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return decideResponse{}, fmt.Errorf("POST /v1/decide: %d %s", resp.StatusCode, raw)
	}
	var d decideResponse
	if err := json.Unmarshal(raw, &d); err != nil {
		return decideResponse{}, fmt.Errorf("decision is not JSON: %v: %s", err, raw)
	}
	return d, nil
}

func (r *replica) admin(t *testing.T, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+r.addr+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminCredential)
	resp, err := decideClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// revokeSubject revokes sub through replica via's admin API and waits until
// every replica denies tok, a token of sub.
func (rs *replicaSet) revokeSubject(t *testing.T, via int, sub, tok string) {
	t.Helper()
	if status, _ := rs.replicas[via].admin(t, "POST", "/v1/admin/revocations", fmt.Sprintf(`{"kind":"subject","iss":%q,"value":%q}`, issuerURL, sub)); status != http.StatusCreated {
		t.Fatalf("revoke %s: %d", sub, status)
	}
	for _, r := range rs.replicas {
		for deadline := time.Now().Add(5 * time.Second); r.decide(t, bearer(tok), nil).Allow; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("replica %s never denied %s's token", r.addr, sub)
			}
		}
	}
}

func (rs *replicaSet) mint(t testing.TB, claims map[string]any, opts ...devissuer.MintOption) string {
	t.Helper()
	c := map[string]any{"aud": testAudience, "sub": "alice", "client_id": "web-app", "scope": "accounts:read",
		"iat": time.Now().Add(-time.Minute).Unix(), "exp": time.Now().Add(10 * time.Minute).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	tok, err := rs.issuer.Mint(c, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func firstCode(d decideResponse) string {
	if len(d.Reasons) == 0 {
		return ""
	}
	return d.Reasons[0].Code
}

// TestIntegrationRedisRevocationReachesEveryReplica: a revocation written
// through replica 1 denies on replicas 2 and 3 within 1 s, and so does its
// deletion.
func TestIntegrationRedisRevocationReachesEveryReplica(t *testing.T) {
	rs := newReplicaSet(t, 3, "    replay: deny\n    fingerprint: monitor")
	for i, kind := range []string{"subject", "session", "client", "jti"} {
		t.Run("fail/"+kind+" revoked through replica 1", func(t *testing.T) {
			claims := map[string]any{"sub": fmt.Sprint("user-", i), "sid": fmt.Sprint("sess-", i), "client_id": fmt.Sprint("client-", i), "jti": fmt.Sprint("jti-", i)}
			tok := rs.mint(t, claims)
			for _, r := range rs.replicas {
				if d := r.decide(t, bearer(tok), nil); !d.Allow {
					t.Fatalf("before the revocation: %v", d.Reasons)
				}
			}
			status, rec := rs.replicas[0].admin(t, "POST", "/v1/admin/revocations",
				fmt.Sprintf(`{"kind":%q,"iss":%q,"value":%q,"reason":"replication test"}`, kind, issuerURL, claims[map[string]string{"subject": "sub", "session": "sid", "client": "client_id", "jti": "jti"}[kind]]))
			if status != http.StatusCreated {
				t.Fatalf("POST /v1/admin/revocations = %d %v", status, rec)
			}
			written := time.Now()
			var slowest time.Duration
			for _, r := range rs.replicas[1:] {
				for {
					if d := r.decide(t, bearer(tok), nil); !d.Allow {
						slowest = max(slowest, time.Since(written))
						break
					}
					if time.Since(written) > 10*time.Second {
						t.Fatalf("replica %s still allows 10s after the revocation", r.addr)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			t.Logf("%s revocation denied on replicas 2 and 3 after %s", kind, slowest)
			if slowest > time.Second {
				t.Errorf("the revocation took %s to reach every replica; the target is 1s", slowest)
			}
			if kind == "subject" {
				id, _ := rec["id"].(string)
				if status, _ := rs.replicas[2].admin(t, "DELETE", "/v1/admin/revocations/"+id, ""); status != http.StatusNoContent {
					t.Fatalf("DELETE through replica 3 = %d", status)
				}
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
					if d := rs.replicas[0].decide(t, bearer(tok), nil); d.Allow {
						break
					}
					if time.Now().After(deadline) {
						t.Fatal("a deletion through replica 3 never reached replica 1")
					}
				}
			}
		})
	}
	t.Run("ok/status reports the backend and the replication", func(t *testing.T) {
		resp, err := http.Get("http://" + rs.replicas[1].addr + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var st struct {
			Store struct {
				Backend     string `json:"backend"`
				Replication struct {
					Connected     bool    `json:"connected"`
					Ready         bool    `json:"ready"`
					LastAppliedID string  `json:"last_applied_id"`
					StaleSeconds  float64 `json:"stale_seconds"`
				} `json:"replication"`
			} `json:"store"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
			t.Fatal(err)
		}
		rep := st.Store.Replication
		if st.Store.Backend != "redis" || !rep.Connected || !rep.Ready || rep.LastAppliedID == "" || rep.StaleSeconds > 5 {
			t.Errorf("store status = %+v", st.Store)
		}
		mresp, err := http.Get("http://" + rs.replicas[1].addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer mresp.Body.Close()
		raw, _ := io.ReadAll(mresp.Body)
		if !strings.Contains(string(raw), "pdp_store_replication_connected 1") || !strings.Contains(string(raw), "pdp_store_replication_stale_seconds ") {
			t.Error("/metrics lacks the replication gauges")
		}
	})
}

// TestIntegrationRedisSharedChecks: DPoP proofs, bearer fingerprints and
// refresh-token families count across replicas.
func TestIntegrationRedisSharedChecks(t *testing.T) {
	rs := newReplicaSet(t, 3, "    replay: deny\n    fingerprint: monitor")
	r1, r2, r3 := rs.replicas[0], rs.replicas[1], rs.replicas[2]
	const url = "https://api.example.com/v1/accounts/42"

	t.Run("fail/a DPoP proof used on replica 1 is replayed on replica 2", func(t *testing.T) {
		prover, _ := dpoptest.NewProver("ES256")
		bound := rs.mint(t, map[string]any{"cnf": map[string]any{"jkt": prover.JKT()}})
		h, r := dpopRequest(t, prover, bound, "GET", url)
		if d := r1.decide(t, h, r); !d.Allow {
			t.Fatalf("first use on replica 1: %v", d.Reasons)
		}
		d := r2.decide(t, h, r)
		if d.Allow || firstCode(d) != "dpop_replayed" {
			t.Fatalf("the same proof on replica 2: allow=%v %v, want dpop_replayed", d.Allow, d.Reasons)
		}
	})

	t.Run("fail/a bearer token seen from one network on replica 1 is suspected from another on replica 3", func(t *testing.T) {
		tok := rs.mint(t, nil)
		hdr := map[string]any{"authorization": "Bearer " + tok, "user-agent": "app/1.0"}
		if d := r1.decide(t, hdr, with(nil, "remote_ip", "203.0.113.7")); !d.Allow {
			t.Fatalf("first sighting: %v", d.Reasons)
		}
		waitSharedFingerprint(t, rs, tok)
		if d := r2.decide(t, hdr, with(nil, "remote_ip", "203.0.113.99")); !d.Allow {
			t.Fatalf("same network on replica 2: %v", d.Reasons)
		}
		d := r3.decide(t, hdr, with(nil, "remote_ip", "198.51.100.4"))
		if d.Allow || firstCode(d) != "token_replay_suspected" {
			t.Fatalf("another network on replica 3: allow=%v %v, want token_replay_suspected", d.Allow, d.Reasons)
		}
	})

	t.Run("fail/a SET applied on replica 1 and replayed on replica 2 does not bring back a deleted revocation", func(t *testing.T) {
		tok := rs.mint(t, map[string]any{"sub": "ssf-user"})
		header, _ := json.Marshal(map[string]any{"alg": "ES256", "typ": "secevent+jwt", "kid": rs.transmitter.KID()})
		payload, _ := json.Marshal(map[string]any{
			"iss": "https://tx.example", "aud": "https://pdp.example/ssf", "iat": time.Now().Unix(), "jti": "set-replicated",
			"sub_id": map[string]any{"format": "iss_sub", "iss": issuerURL, "sub": "ssf-user"},
			"events": map[string]any{"https://schemas.openid.net/secevent/risc/event-type/account-disabled": map[string]any{}},
		})
		set, err := devissuer.SignCompact(rs.transmitter.PrivateKey(), "ES256", header, payload)
		if err != nil {
			t.Fatal(err)
		}
		r1.pushSET(t, set)
		status, out := r1.admin(t, "GET", "/v1/admin/revocations?kind=subject&value=ssf-user", "")
		revs, _ := out["revocations"].([]any)
		if status != http.StatusOK || len(revs) != 1 {
			t.Fatalf("revocations of ssf-user = %d %v", status, out)
		}
		id, _ := revs[0].(map[string]any)["id"].(string)
		if status, _ := r1.admin(t, "DELETE", "/v1/admin/revocations/"+id, ""); status != http.StatusNoContent {
			t.Fatalf("delete = %d", status)
		}
		for deadline := time.Now().Add(5 * time.Second); !r2.decide(t, bearer(tok), nil).Allow; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the deleted revocation never left replica 2")
			}
		}
		r2.pushSET(t, set)
		if d := r2.decide(t, bearer(tok), nil); !d.Allow {
			t.Fatalf("the replayed SET revoked again on replica 2: %v", d.Reasons)
		}
	})

	t.Run("fail/a bearer token replayed at once from another network on the same replica, 1000 times", func(t *testing.T) {
		decide := func(h, extra map[string]any) decideResponse { return r1.decide(t, h, extra) }
		immediateReplays(t, 1000, false, func() string { return rs.mint(t, nil) }, decide)
	})

	t.Run("fail/a refresh token reused across replicas is caught and revokes the session everywhere", func(t *testing.T) {
		refresh := func() string { return mintRefresh(t, rs.issuer, "sess-r") }
		tokenRequest := refreshGrant
		access := rs.mint(t, map[string]any{"sid": "sess-r"})
		rt1, rt2 := refresh(), refresh()
		if d := r1.decide(t, map[string]any{}, tokenRequest(rt1)); !d.Allow {
			t.Fatalf("first refresh token on replica 1: %v", d.Reasons)
		}
		if d := r2.decide(t, map[string]any{}, tokenRequest(rt2)); !d.Allow {
			t.Fatalf("its successor on replica 2: %v", d.Reasons)
		}
		d := r3.decide(t, map[string]any{}, tokenRequest(rt1))
		if d.Allow || firstCode(d) != "refresh_token_reused" {
			t.Fatalf("the rotated-out token on replica 3: allow=%v %v, want refresh_token_reused", d.Allow, d.Reasons)
		}
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if d := r1.decide(t, bearer(access), nil); firstCode(d) == "session_revoked" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the session revoked on replica 3 for reuse still works on replica 1")
			}
		}
	})
}

// pushSET delivers a SET to replica r and requires 202.
func (r *replica) pushSET(t *testing.T, set string) {
	t.Helper()
	resp, err := decideClient.Post("http://"+r.addr+"/v1/ssf/events", "application/secevent+jwt", strings.NewReader(set))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("push to %s = %d %s", r.addr, resp.StatusCode, body)
	}
}

// waitSharedFingerprint waits until a replica recorded the fingerprint of
// tok in Redis (recording is asynchronous).
func waitSharedFingerprint(t *testing.T, rs *replicaSet, tok string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: rs.redis.Addr()})
	defer c.Close()
	key := "pdp:fp:" + tokenHash(tok)
	for range 500 {
		if n, err := c.Exists(context.Background(), key).Result(); err == nil && n == 1 {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("the fingerprint was never recorded in Redis")
}

// TestIntegrationRedisFaults kills Redis under load: DPoP decisions are
// denied with state_unavailable (replay: deny), bearer decisions go on with
// a state_unavailable warning (fingerprint: monitor), revocations keep
// applying from the local view, and nothing else fails or hangs. With Redis
// back, the replicas catch up; a replica restarted while revocations were
// written catches up before it reports ready.
func TestIntegrationRedisFaults(t *testing.T) {
	rs := newReplicaSet(t, 3, "    replay: deny\n    fingerprint: monitor")
	const url = "https://api.example.com/v1/accounts/42"
	prover, _ := dpoptest.NewProver("ES256")
	bound := rs.mint(t, map[string]any{"cnf": map[string]any{"jkt": prover.JKT()}})
	revoked := rs.mint(t, map[string]any{"sub": "mallory"})
	rs.revokeSubject(t, 0, "mallory", revoked)

	// Load: every worker sends bearer and DPoP decisions to one replica
	// and classifies each answer.
	var (
		stop                                                                     atomic.Bool
		mu                                                                       sync.Mutex
		unexpected                                                               []string
		bearerAllowed, bearerWarned, dpopAllowed, dpopUnavailable, revokedDenied atomic.Int64
	)
	note := func(s string) {
		mu.Lock()
		defer mu.Unlock()
		if len(unexpected) < 20 {
			unexpected = append(unexpected, s)
		}
	}
	var wg sync.WaitGroup
	for w := range 6 {
		r := rs.replicas[w%3]
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				tok := rs.mint(t, map[string]any{"sub": fmt.Sprint("load-", w, "-", i)})
				start := time.Now()
				d, err := r.tryDecide(map[string]any{"authorization": "Bearer " + tok, "user-agent": "load"}, with(nil, "remote_ip", "203.0.113.7"))
				switch {
				case err != nil:
					note(err.Error())
				case time.Since(start) > 5*time.Second:
					note("a bearer decision hung for " + time.Since(start).String())
				case d.Allow && hasWarning(d, "state_unavailable"):
					bearerWarned.Add(1)
				case d.Allow:
					bearerAllowed.Add(1)
				default:
					note(fmt.Sprintf("bearer denied: %v", d.Reasons))
				}
				proof, _ := prover.Proof("GET", url, bound)
				d, err = r.tryDecide(map[string]any{"authorization": "DPoP " + bound, "dpop": proof}, at("GET", url))
				switch {
				case err != nil:
					note(err.Error())
				case d.Allow:
					dpopAllowed.Add(1)
				case firstCode(d) == "state_unavailable" && d.Status == 503:
					dpopUnavailable.Add(1)
				default:
					note(fmt.Sprintf("dpop denied: %d %v", d.Status, d.Reasons))
				}
				d, err = r.tryDecide(bearer(revoked), nil)
				switch {
				case err != nil:
					note(err.Error())
				case firstCode(d) == "subject_revoked":
					revokedDenied.Add(1)
				default:
					note(fmt.Sprintf("revoked token: allow=%v %v", d.Allow, d.Reasons))
				}
			}
		})
	}
	time.Sleep(500 * time.Millisecond)
	rs.redis.Kill()
	time.Sleep(1500 * time.Millisecond)
	downDPoP := dpopUnavailable.Load()
	downWarned := bearerWarned.Load()

	t.Run("ok/replicas stay ready while Redis is down", func(t *testing.T) {
		for _, r := range rs.replicas {
			resp, err := http.Get("http://" + r.addr + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("replica %s /readyz = %d while Redis is down", r.addr, resp.StatusCode)
			}
		}
	})

	// Redis back: DPoP decisions recover.
	rs.redis.Start()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		proof, _ := prover.Proof("GET", url, bound)
		if d, err := rs.replicas[0].tryDecide(map[string]any{"authorization": "DPoP " + bound, "dpop": proof}, at("GET", url)); err == nil && d.Allow {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("DPoP decisions never recovered after Redis came back")
		}
	}
	time.Sleep(300 * time.Millisecond)
	stop.Store(true)
	wg.Wait()

	t.Logf("under load: bearer allowed %d (with state_unavailable warning %d), dpop allowed %d, dpop state_unavailable %d, revoked token denied %d",
		bearerAllowed.Load(), bearerWarned.Load(), dpopAllowed.Load(), dpopUnavailable.Load(), revokedDenied.Load())
	if len(unexpected) > 0 {
		t.Errorf("answers beyond the configured behaviour:\n%s", strings.Join(unexpected, "\n"))
	}
	if downDPoP == 0 || downWarned == 0 {
		t.Errorf("no degraded answers while Redis was down: dpop state_unavailable %d, bearer warnings %d", downDPoP, downWarned)
	}

	t.Run("ok/Redis back: a revocation reaches every replica again", func(t *testing.T) {
		tok := rs.mint(t, map[string]any{"sub": "after-outage"})
		rs.revokeSubject(t, 1, "after-outage", tok)
	})

	t.Run("ok/a replica restarted while revocations were written catches up before ready", func(t *testing.T) {
		r3 := rs.replicas[2]
		r3.stop(t)
		var toks []string
		for i := range 20 {
			sub := fmt.Sprint("while-down-", i)
			toks = append(toks, rs.mint(t, map[string]any{"sub": sub}))
			if status, _ := rs.replicas[0].admin(t, "POST", "/v1/admin/revocations", fmt.Sprintf(`{"kind":"subject","iss":%q,"value":%q}`, issuerURL, sub)); status != http.StatusCreated {
				t.Fatalf("revoke %s: %d", sub, status)
			}
		}
		r3.start(t) // returns at the first 200 from /readyz
		for i, tok := range toks {
			if d := r3.decide(t, bearer(tok), nil); d.Allow {
				t.Fatalf("revocation %d written while the replica was down is not in force once it is ready", i)
			}
		}
	})
}

// TestIntegrationRedisUnavailableTheOtherWay: with replay allow_with_reason
// and fingerprint deny, an unavailable Redis lets DPoP proofs through with a
// state_unavailable warning and denies bearer tokens with state_unavailable.
func TestIntegrationRedisUnavailableTheOtherWay(t *testing.T) {
	rs := newReplicaSet(t, 1, "    replay: allow_with_reason\n    fingerprint: deny")
	r := rs.replicas[0]
	const url = "https://api.example.com/v1/accounts/42"
	prover, _ := dpoptest.NewProver("ES256")
	bound := rs.mint(t, map[string]any{"cnf": map[string]any{"jkt": prover.JKT()}})
	tok := rs.mint(t, nil)
	if d := r.decide(t, bearer(tok), nil); !d.Allow {
		t.Fatalf("bearer with Redis up: %v", d.Reasons)
	}
	rs.redis.Kill()

	t.Run("ok/a DPoP proof passes with a state_unavailable warning", func(t *testing.T) {
		h, req := dpopRequest(t, prover, bound, "GET", url)
		d := r.decide(t, h, req)
		if !d.Allow || !hasWarning(d, "state_unavailable") {
			t.Fatalf("allow=%v reasons=%v warnings=%v", d.Allow, d.Reasons, d.Warnings)
		}
	})
	t.Run("fail/a bearer token is denied with state_unavailable", func(t *testing.T) {
		d := r.decide(t, bearer(tok), nil)
		if d.Allow || d.Status != 503 || firstCode(d) != "state_unavailable" {
			t.Fatalf("allow=%v status=%d reasons=%v", d.Allow, d.Status, d.Reasons)
		}
	})
	t.Run("ok/the metric counts both", func(t *testing.T) {
		resp, err := http.Get("http://" + r.addr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		for _, want := range []string{`pdp_store_unavailable_total{check="replay",outcome="allowed"}`, `pdp_store_unavailable_total{check="fingerprint",outcome="denied"}`} {
			if !strings.Contains(string(raw), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

// TestIntegrationRedisPausedUnderKeptDecisions: a Redis stopped with
// SIGSTOP (connections open, no answers) under bearer tokens whose
// decisions were kept. Revalidating a kept decision asks Redis for the
// fingerprint, and the evaluation after a failed revalidation used to ask
// again: two timeouts exceeded decision_timeout and answered policy_error
// (500). One decision now waits for at most one store.redis.timeout, and
// the failure is answered as store.on_unavailable says: with fingerprint
// monitor, an allow with a state_unavailable warning; with deny, a 503.
func TestIntegrationRedisPausedUnderKeptDecisions(t *testing.T) {
	for _, tt := range []struct {
		name, onUnavailable string
		want                func(d decideResponse) bool
	}{
		{"ok/fingerprint monitor: allowed with a state_unavailable warning", "    fingerprint: monitor",
			func(d decideResponse) bool { return d.Allow && hasWarning(d, "state_unavailable") }},
		{"fail/fingerprint deny: denied 503 state_unavailable", "    fingerprint: deny",
			func(d decideResponse) bool { return !d.Allow && d.Status == 503 && firstCode(d) == "state_unavailable" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Two timeouts (the revalidation and the evaluation) exceed
			// the decision's; one leaves it ample time.
			rs := newReplicaSetWith(t, 1, replicaSetup{onUnavailable: tt.onUnavailable, decisionTimeout: "1s", redisTimeout: "600ms"})
			r := rs.replicas[0]
			var toks []string
			for i := range 4 {
				tok := rs.mint(t, map[string]any{"sub": fmt.Sprint("kept-", i)})
				// Evaluated (and again once its first sighting is written),
				// then answered from the kept decision.
				// A slow machine may time a first call out: the answers
				// before the pause are not checked, only that decisions
				// were kept.
				for range 5 {
					r.decide(t, bearer(tok), nil)
				}
				toks = append(toks, tok)
			}
			if hits := metricValue(t, r, `pdp_decision_cache_total{result="hit"}`); hits < 4 {
				t.Fatalf("%v decisions answered from kept ones before the pause, want them kept", hits)
			}
			rs.redis.Pause()
			var bad []string
			const n = 12
			for i := range n {
				d, err := r.tryDecide(bearer(toks[i%len(toks)]), nil)
				if err != nil {
					bad = append(bad, err.Error())
				} else if !tt.want(d) {
					bad = append(bad, fmt.Sprintf("allow=%v status=%d reasons=%v warnings=%v", d.Allow, d.Status, d.Reasons, d.Warnings))
				}
			}
			if len(bad) > 0 {
				t.Errorf("%d of %d decisions while Redis was paused were not as store.on_unavailable says, e.g.\n%s", len(bad), n, strings.Join(bad[:min(len(bad), 5)], "\n"))
			}
			rs.redis.Resume()
		})
	}
}

// metricValue reads one sample of the replica's /metrics; 0 when absent.
func metricValue(t *testing.T, r *replica, sample string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + r.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			_, _ = fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// TestIntegrationRedisFollowerLag: a replica whose copy of the revocations
// has not been able to follow the stream for longer than
// store.redis.max_follower_lag is taken out of rotation (/readyz 503) rather
// than allowing tokens revoked meanwhile; /v1/status and /metrics show the
// lag. Once Redis is back it catches up and is ready again.
func TestIntegrationRedisFollowerLag(t *testing.T) {
	rs := newReplicaSetWith(t, 1, replicaSetup{onUnavailable: "    fingerprint: monitor", maxFollowerLag: "2s"})
	r := rs.replicas[0]
	readyz := func() int {
		resp, err := http.Get("http://" + r.addr + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	type replication struct {
		Ready         bool    `json:"ready"`
		StaleSeconds  float64 `json:"stale_seconds"`
		MaxLagSeconds float64 `json:"max_lag_seconds"`
		Following     bool    `json:"following"`
	}
	status := func() replication {
		resp, err := http.Get("http://" + r.addr + "/v1/status")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var st struct {
			Store struct {
				Replication json.RawMessage `json:"replication"`
			} `json:"store"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatal(err)
		}
		t.Logf("replication: %s", st.Store.Replication)
		var rep replication
		_ = json.Unmarshal(st.Store.Replication, &rep)
		return rep
	}
	if rep := status(); !rep.Following || !rep.Ready || rep.MaxLagSeconds != 2 || readyz() != 200 {
		t.Fatalf("with Redis up: %+v", rep)
	}
	rs.redis.Kill()

	t.Run("fail/not ready once the copy could not follow for max_follower_lag", func(t *testing.T) {
		for deadline := time.Now().Add(10 * time.Second); readyz() != http.StatusServiceUnavailable; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("/readyz never turned 503 while the replica could not follow")
			}
		}
		if rep := status(); rep.Following || rep.Ready || rep.StaleSeconds <= 2 {
			t.Errorf("status while lagging: %+v", rep)
		}
		if v := metricValue(t, r, "pdp_store_replication_following"); v != 0 {
			t.Errorf("pdp_store_replication_following = %v, want 0", v)
		}
		if v := metricValue(t, r, "pdp_store_replication_stale_seconds"); v <= 2 {
			t.Errorf("pdp_store_replication_stale_seconds = %v, want > 2", v)
		}
	})
	t.Run("ok/ready again once Redis is back and the copy caught up", func(t *testing.T) {
		rs.redis.Start()
		for deadline := time.Now().Add(10 * time.Second); readyz() != 200; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("/readyz never turned 200 again")
			}
		}
		if rep := status(); !rep.Following || !rep.Ready {
			t.Errorf("status after catching up: %+v", rep)
		}
	})
}

// TestIntegrationRedisClusterFailover: three pdp replicas on a Redis
// Cluster of 3 masters and 3 replicas; the master holding the revocation
// stream is killed (SIGKILL) under load. A revocation acknowledged through
// one replica after the kill is enforced by every replica within 2s of the
// replica's promotion (as the cluster reports it), and no decision is a
// 500 meanwhile.
func TestIntegrationRedisClusterFailover(t *testing.T) {
	nodes := redistest.StartClusterWithReplicas(t, 3, 1)
	var addrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.Addr())
	}
	rs := newReplicaSetWith(t, 3, replicaSetup{onUnavailable: "    replay: deny\n    fingerprint: monitor",
		redis: "    addrs: [" + strings.Join(addrs, ", ") + "]"})
	out, err := nodes[0].CLI("cluster", "keyslot", "pdp:{revocations}")
	if err != nil {
		t.Fatal(err)
	}
	var slot int64
	if _, err := fmt.Sscan(out, &slot); err != nil {
		t.Fatalf("cluster keyslot: %q", out)
	}
	masterOf := func(via *redistest.Server) string {
		c := redis.NewClient(&redis.Options{Addr: via.Addr(), DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond, MaxRetries: -1})
		defer c.Close()
		slots, err := c.ClusterSlots(context.Background()).Result()
		if err != nil {
			return ""
		}
		for _, s := range slots {
			if int64(s.Start) <= slot && slot <= int64(s.End) && len(s.Nodes) > 0 {
				return s.Nodes[0].Addr
			}
		}
		return ""
	}
	old := masterOf(nodes[0])
	var victim, witness *redistest.Server
	for _, n := range nodes {
		if n.Addr() == old {
			victim = n
		} else if witness == nil {
			witness = n
		}
	}
	if victim == nil {
		t.Fatalf("no node is the master of slot %d (%q)", slot, old)
	}

	failoverUnderLoad(t, rs, victim.Kill, func() bool { m := masterOf(witness); return m != "" && m != old })
}

// TestIntegrationRedisSentinelFailover: the same with a master, a replica
// and three Sentinels.
func TestIntegrationRedisSentinelFailover(t *testing.T) {
	master := redistest.Start(t)
	replica := redistest.StartReplica(t, master)
	sentinels := redistest.StartSentinels(t, master, 3, 2, 1)
	var addrs []string
	for _, s := range sentinels {
		addrs = append(addrs, s.Addr())
	}
	rs := newReplicaSetWith(t, 3, replicaSetup{onUnavailable: "    replay: deny\n    fingerprint: monitor",
		redis: "    addrs: [" + strings.Join(addrs, ", ") + "]\n    master_name: mymaster"})
	_, port, _ := strings.Cut(replica.Addr(), ":")
	failoverUnderLoad(t, rs, master.Kill, func() bool {
		out, err := sentinels[0].CLI("sentinel", "get-master-addr-by-name", "mymaster")
		return err == nil && strings.Contains(out, port)
	})
}

// failoverUnderLoad kills the master under bearer decisions on every
// replica, writes a revocation through replica 1 until it is acknowledged,
// and checks that every replica enforces it within 2s of the promotion
// (promoted reports it from the cluster's or the Sentinels' view) and that
// no decision failed meanwhile.
func failoverUnderLoad(t *testing.T, rs *replicaSet, kill func(), promotedNow func() bool) {
	t.Helper()
	var (
		stop       atomic.Bool
		mu         sync.Mutex
		unexpected []string
		wg         sync.WaitGroup
	)
	for i, r := range rs.replicas {
		wg.Go(func() {
			tok := rs.mint(t, map[string]any{"sub": fmt.Sprint("load-", i)})
			for !stop.Load() {
				d, err := r.tryDecide(map[string]any{"authorization": "Bearer " + tok, "user-agent": "load"}, with(nil, "remote_ip", "203.0.113.7"))
				if err != nil || !d.Allow {
					mu.Lock()
					if len(unexpected) < 10 {
						unexpected = append(unexpected, fmt.Sprintf("replica %d: %v %+v", i, err, d.Reasons))
					}
					mu.Unlock()
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	killed := time.Now()
	kill()
	var promoted atomic.Int64
	go func() {
		for time.Since(killed) < 30*time.Second {
			if promotedNow() {
				promoted.Store(time.Now().UnixNano())
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()

	tok := rs.mint(t, map[string]any{"sub": "revoked-during-failover"})
	var acked time.Time
	for tries := 1; ; tries++ {
		status, _ := rs.replicas[0].admin(t, "POST", "/v1/admin/revocations", fmt.Sprintf(`{"kind":"subject","iss":%q,"value":"revoked-during-failover"}`, issuerURL))
		if status == http.StatusCreated {
			acked = time.Now()
			break
		}
		if status != http.StatusServiceUnavailable || time.Since(killed) > 30*time.Second {
			t.Fatalf("revocation answered %d after %d tries, %s after the kill", status, tries, time.Since(killed))
		}
		time.Sleep(20 * time.Millisecond)
	}
	var enforced time.Time
	for i, r := range rs.replicas {
		for r.decide(t, bearer(tok), nil).Allow {
			if time.Since(acked) > 30*time.Second {
				t.Fatalf("replica %d never denied the revoked token", i)
			}
			time.Sleep(5 * time.Millisecond)
		}
		enforced = time.Now()
	}
	stop.Store(true)
	wg.Wait()
	for promoted.Load() == 0 && time.Since(killed) < 30*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	if promoted.Load() == 0 {
		t.Fatal("the promotion was never observed")
	}
	promotedAt := time.Unix(0, promoted.Load())
	t.Logf("after the kill: promoted %s, revocation acknowledged %s, enforced on every replica %s",
		promotedAt.Sub(killed).Round(time.Millisecond), acked.Sub(killed).Round(time.Millisecond), enforced.Sub(killed).Round(time.Millisecond))
	if d := enforced.Sub(promotedAt); d > 2*time.Second {
		t.Errorf("the revocation was enforced everywhere %s after the promotion, want within 2s", d.Round(time.Millisecond))
	}
	if len(unexpected) > 0 {
		t.Errorf("decisions during the failover that were not allowed (bearer, fingerprint monitor):\n%s", strings.Join(unexpected, "\n"))
	}
}
