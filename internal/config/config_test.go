package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "pdp.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const validYAML = `
listen: 127.0.0.1:9000
data_dir: /tmp/pdp
environment: staging
decision_timeout: 250ms
issuers:
  - issuer: https://as.example.com
    jwks_uri: https://as.example.com/jwks
    audiences: [https://api.example.com]
    access_token_type: at+jwt
`

func TestLoad(t *testing.T) {
	t.Run("ok/file values over defaults", func(t *testing.T) {
		c, err := Load(writeConfig(t, validYAML), pflag.NewFlagSet("x", pflag.ContinueOnError), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Listen != "127.0.0.1:9000" || c.Environment != "staging" || c.DecisionTimeout != 250*time.Millisecond {
			t.Errorf("file values not applied: %+v", c)
		}
		if c.Policy.Dir != "./rego" || c.ClockSkew != 30*time.Second {
			t.Errorf("defaults not applied: %+v", c)
		}
		is := c.Issuers[0]
		if is.JWKSRefresh != DefaultJWKSRefresh || len(is.Algorithms) != len(DefaultAlgorithms) {
			t.Errorf("issuer defaults not applied: %+v", is)
		}
	})
	t.Run("ok/environment over file", func(t *testing.T) {
		t.Setenv("PDP_ENVIRONMENT", "dev")
		t.Setenv("PDP_POLICY_DIR", "/policies")
		c, err := Load(writeConfig(t, validYAML), pflag.NewFlagSet("x", pflag.ContinueOnError), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Environment != "dev" || c.Policy.Dir != "/policies" {
			t.Errorf("environment not applied: %+v", c)
		}
	})
	t.Run("ok/flag over environment", func(t *testing.T) {
		t.Setenv("PDP_LISTEN", "127.0.0.1:1")
		fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
		fs.String("listen", "", "")
		if err := fs.Parse([]string{"--listen", "127.0.0.1:2"}); err != nil {
			t.Fatal(err)
		}
		c, err := Load(writeConfig(t, validYAML), fs, map[string]string{"listen": "listen"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if c.Listen != "127.0.0.1:2" {
			t.Errorf("listen = %q, want the flag's", c.Listen)
		}
	})
	t.Run("fail/unknown key named", func(t *testing.T) {
		_, err := Load(writeConfig(t, validYAML+"listne: x\n"), pflag.NewFlagSet("x", pflag.ContinueOnError), nil, nil)
		if err == nil || !strings.Contains(err.Error(), "listne") {
			t.Fatalf("err = %v, want it to name listne", err)
		}
	})
}

func TestValidateNamesEveryProblem(t *testing.T) {
	c := Defaults()
	c.Listen = "nope"
	c.DecisionTimeout = 0
	c.Store.CommitWait = time.Second
	c.Ops.Listen = "no-port"
	c.SSF.MaxAge = time.Second
	c.Revoke.Clients = []RevokeClient{{ClientID: "a", SecretFile: "a.sha256"}, {ClientID: "a"}, {SecretFile: "x"},
		{ClientID: "d", SecretFile: "d.sha256", Issuer: "https://nowhere.example"}}
	c.Decide.MaxConcurrent = -1
	c.Decide.MaxQueue = -1
	c.Issuers = []Issuer{
		{Issuer: "https://a.example", JWKSURI: "http://a.example/jwks", Audiences: []string{"x"}, Algorithms: []string{"HS256"}},
		{Issuer: "https://a.example", JWKSFile: "k.json", JWKSURI: "https://a.example/jwks"},
		{Issuer: "not a url", Introspection: &Introspection{Endpoint: "https://b.example/i"}, Audiences: []string{"y"}},
	}
	c.ApplyDefaults()
	err := c.Validate()
	if err == nil {
		t.Fatal("Validate() = nil, want errors")
	}
	for _, want := range []string{
		"listen:",
		"decision_timeout:",
		"store.commit_wait: must be between 0 and 10ms",
		"ops.listen: must be host:port",
		"ssf.max_age: must be between 1m and 720h",
		"decide.max_concurrent: must be between 0",
		"decide.max_queue: must be between 0",
		"revoke.clients[1].client_id: duplicate client \"a\"",
		"revoke.clients[1].secret_file: must be set",
		"revoke.clients[2].client_id: must be 1 to 256 bytes",
		"revoke.clients[0].issuer: must name the client's issuer when more than one issuer is configured",
		"revoke.clients[3].issuer: \"https://nowhere.example\" is not one of issuers[].issuer",
		"issuers[0].jwks_uri: must be https",
		"issuers[0].algorithms[0]: \"HS256\"",
		"issuers[1].issuer: duplicate",
		"issuers[1]: jwks_uri and jwks_file are exclusive",
		"issuers[1].audiences:",
		"issuers[2].issuer: must be an absolute URL",
		"issuers[2].introspection.client_id:",
		"issuers[2].introspection.client_secret_file:",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() does not name %q:\n%v", want, err)
		}
	}
}

func TestOpsListenMustBeItsOwn(t *testing.T) {
	c := Defaults()
	c.Ops.Listen = c.Listen
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "ops.listen: must differ") {
		t.Fatalf("Validate() = %v, want ops.listen named", err)
	}
	c.Ops.Listen = "127.0.0.1:9090"
	if err := c.Validate(); err != nil && strings.Contains(err.Error(), "ops.") {
		t.Fatal(err)
	}
}

func TestValidateAcceptsLoopbackHTTP(t *testing.T) {
	c := Defaults()
	c.Issuers = []Issuer{{Issuer: "http://127.0.0.1:8181/dev", JWKSURI: "http://127.0.0.1:8181/dev/jwks.json", Audiences: []string{"x"}}}
	c.ApplyDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestStoreBackend(t *testing.T) {
	load := func(t *testing.T, extra string) (Config, error) {
		t.Helper()
		return Load(writeConfig(t, validYAML+extra), pflag.NewFlagSet("x", pflag.ContinueOnError), nil, nil)
	}
	t.Run("ok/bbolt by default, deny replay and monitor fingerprints when Redis is down", func(t *testing.T) {
		c, err := load(t, "")
		if err != nil {
			t.Fatal(err)
		}
		if c.Store.Backend != BackendBbolt || c.Store.OnUnavailable.Replay != "deny" || c.Store.OnUnavailable.Fingerprint != "monitor" ||
			c.Store.Redis.KeyPrefix != "pdp:" || c.Store.Redis.Timeout != 50*time.Millisecond || c.Store.Redis.MaxFollowerLag != 5*time.Second {
			t.Errorf("defaults: %+v", c.Store)
		}
	})
	t.Run("ok/redis backend from the file", func(t *testing.T) {
		c, err := load(t, `
store:
  backend: redis
  redis:
    addrs: [127.0.0.1:6379, 127.0.0.1:6380]
    username: pdp
    password_file: /run/secrets/redis
    timeout: 80ms
  on_unavailable:
    replay: allow_with_reason
    fingerprint: deny
`)
		if err != nil {
			t.Fatal(err)
		}
		r := c.Store.Redis
		if c.Store.Backend != BackendRedis || len(r.Addrs) != 2 || r.Username != "pdp" || r.Timeout != 80*time.Millisecond || r.KeyPrefix != "pdp:" {
			t.Errorf("redis: %+v", c.Store)
		}
		if c.Store.OnUnavailable.Replay != "allow_with_reason" || c.Store.OnUnavailable.Fingerprint != "deny" {
			t.Errorf("on_unavailable: %+v", c.Store.OnUnavailable)
		}
	})
	t.Run("ok/redis backend from the environment", func(t *testing.T) {
		t.Setenv("PDP_STORE_BACKEND", "redis")
		t.Setenv("PDP_STORE_REDIS_ADDRS", "10.0.0.1:6379,10.0.0.2:6379")
		c, err := load(t, "")
		if err != nil {
			t.Fatal(err)
		}
		if c.Store.Backend != BackendRedis || len(c.Store.Redis.Addrs) != 2 {
			t.Errorf("store: %+v", c.Store)
		}
	})
	for name, tt := range map[string]struct{ yaml, path string }{
		"fail/unknown backend":                         {"store:\n  backend: etcd\n", "store.backend"},
		"fail/redis without addresses":                 {"store:\n  backend: redis\n", "store.redis.addrs"},
		"fail/address without a port":                  {"store:\n  backend: redis\n  redis:\n    addrs: [redis]\n", "store.redis.addrs[0]"},
		"fail/empty key prefix":                        {"store:\n  backend: redis\n  redis:\n    addrs: [r:6379]\n    key_prefix: \"\"\n", "store.redis.key_prefix"},
		"fail/hash tag in the prefix":                  {"store:\n  backend: redis\n  redis:\n    addrs: [r:6379]\n    key_prefix: \"{x}\"\n", "store.redis.key_prefix"},
		"fail/unbounded timeout":                       {"store:\n  backend: redis\n  redis:\n    addrs: [r:6379]\n    timeout: 0s\n", "store.redis.timeout"},
		"fail/timeout not shorter than the decision's": {"store:\n  backend: redis\n  redis:\n    addrs: [r:6379]\n    timeout: 250ms\n", "store.redis.timeout"},
		"fail/follower lag below the blocking read":    {"store:\n  backend: redis\n  redis:\n    addrs: [r:6379]\n    max_follower_lag: 1s\n", "store.redis.max_follower_lag"},
		"fail/unknown replay setting":                  {"store:\n  on_unavailable:\n    replay: monitor\n", "store.on_unavailable.replay"},
		"fail/unknown fingerprint value":               {"store:\n  on_unavailable:\n    fingerprint: allow\n", "store.on_unavailable.fingerprint"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, tt.yaml)
			if err == nil || !strings.Contains(err.Error(), tt.path+":") {
				t.Fatalf("err = %v, want one naming %s", err, tt.path)
			}
		})
	}
}

func TestForwardAuthStyle(t *testing.T) {
	load := func(t *testing.T, extra string) (Config, error) {
		t.Helper()
		return Load(writeConfig(t, validYAML+extra), pflag.NewFlagSet("x", pflag.ContinueOnError), nil, nil)
	}
	t.Run("ok/nginx by default", func(t *testing.T) {
		c, err := load(t, "")
		if err != nil || c.ForwardAuth.Style != "nginx" {
			t.Fatalf("style = %q, %v", c.ForwardAuth.Style, err)
		}
	})
	t.Run("ok/traefik from the file", func(t *testing.T) {
		c, err := load(t, "forward_auth:\n  style: traefik\n")
		if err != nil || c.ForwardAuth.Style != "traefik" {
			t.Fatalf("style = %q, %v", c.ForwardAuth.Style, err)
		}
	})
	t.Run("ok/caddy from the environment", func(t *testing.T) {
		t.Setenv("PDP_FORWARD_AUTH_STYLE", "caddy")
		c, err := load(t, "")
		if err != nil || c.ForwardAuth.Style != "caddy" {
			t.Fatalf("style = %q, %v", c.ForwardAuth.Style, err)
		}
	})
	for name, yaml := range map[string]string{
		"fail/unknown gateway": "forward_auth:\n  style: envoy\n",
		"fail/empty style":     "forward_auth:\n  style: \"\"\n",
		"fail/style is exact":  "forward_auth:\n  style: NGINX\n",
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := load(t, yaml); err == nil || !strings.Contains(err.Error(), "forward_auth.style:") {
				t.Fatalf("err = %v, want one naming forward_auth.style", err)
			}
		})
	}
}

func TestDecideAdmissionDefaults(t *testing.T) {
	c := Defaults()
	if c.Decide.Concurrency() < 2 || c.Decide.MaxQueue <= 0 || c.Decide.MaxQueueWait <= 0 || c.Decide.MaxQueueWait >= c.DecisionTimeout {
		t.Fatalf("admission defaults = %+v (concurrency %d), want a positive concurrency, queue and wait shorter than decision_timeout", c.Decide, c.Decide.Concurrency())
	}
	c.Decide.MaxQueueWait = c.DecisionTimeout
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "decide.max_queue_wait: must be positive and shorter than decision_timeout") {
		t.Fatalf("Validate() = %v, want decide.max_queue_wait named", err)
	}
	c.Decide.MaxQueue = 0 // no queue: the wait does not matter
	if err := c.Validate(); err != nil && strings.Contains(err.Error(), "decide.") {
		t.Fatalf("Validate() = %v, want no decide problem without a queue", err)
	}
	c.Decide.MaxConcurrent = 3
	if c.Decide.Concurrency() != 3 {
		t.Errorf("Concurrency() = %d, want the configured 3", c.Decide.Concurrency())
	}
}

func TestMemorySettings(t *testing.T) {
	load := func(t *testing.T, extra string) (Config, error) {
		t.Helper()
		return Load(writeConfig(t, validYAML+extra), pflag.NewFlagSet("x", pflag.ContinueOnError), nil, nil)
	}
	t.Run("ok/defaults", func(t *testing.T) {
		c, err := load(t, "")
		if err != nil {
			t.Fatal(err)
		}
		if c.Tokens.CacheBytes != 64<<20 || c.Tokens.CacheEntries != 100_000 || c.DecisionCache.MaxBytes != 32<<20 || c.Runtime.MemoryLimit != MemoryLimitAuto {
			t.Errorf("defaults: tokens %+v decision_cache %+v runtime %+v", c.Tokens, c.DecisionCache, c.Runtime)
		}
	})
	t.Run("ok/byte sizes with units and plain integers", func(t *testing.T) {
		c, err := load(t, "tokens:\n  cache_bytes: 1GiB\ndecision_cache:\n  max_bytes: 2097152\nruntime:\n  memory_limit: 900MiB\n")
		if err != nil {
			t.Fatal(err)
		}
		if c.Tokens.CacheBytes != 1<<30 || c.DecisionCache.MaxBytes != 2<<20 || c.Runtime.MemoryLimit != "900MiB" {
			t.Errorf("tokens %+v decision_cache %+v runtime %+v", c.Tokens, c.DecisionCache, c.Runtime)
		}
	})
	t.Run("ok/byte size from the environment", func(t *testing.T) {
		t.Setenv("PDP_TOKENS_CACHE_BYTES", "128MiB")
		c, err := load(t, "")
		if err != nil {
			t.Fatal(err)
		}
		if c.Tokens.CacheBytes != 128<<20 {
			t.Errorf("tokens.cache_bytes = %d", c.Tokens.CacheBytes)
		}
	})
	for _, tt := range []struct{ name, extra, want string }{
		{"fail/a byte size that does not parse", "tokens:\n  cache_bytes: 64 MB/s\n", "cache_bytes"},
		{"fail/token cache too small", "tokens:\n  cache_bytes: 1KiB\n", "tokens.cache_bytes: must be between 1MiB and 16GiB"},
		{"fail/decision cache too large", "decision_cache:\n  max_bytes: 17GiB\n", "decision_cache.max_bytes: must be between 1MiB and 16GiB"},
		{"fail/no token cache entries", "tokens:\n  cache_entries: 0\n", "tokens.cache_entries:"},
		{"fail/memory limit neither mode nor size", "runtime:\n  memory_limit: half\n", "runtime.memory_limit: must be auto, off or a byte size"},
		{"fail/memory limit too small", "runtime:\n  memory_limit: 1MiB\n", "runtime.memory_limit: must be between 64MiB"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.extra)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestZeroMeansWhatItSays: every duration or number setting whose zero was
// replaced by a default either keeps its zero or refuses it by path; no
// setting silently means something else than it says.
func TestZeroMeansWhatItSays(t *testing.T) {
	const issuer = `
issuers:
  - issuer: https://as.example.com
    jwks_uri: https://as.example.com/jwks
    audiences: [https://api.example.com]
`
	const introspecting = `
issuers:
  - issuer: https://as.example.com
    audiences: [https://api.example.com]
    introspection:
      endpoint: https://as.example.com/introspect
      client_id: pdp
      client_secret_file: /run/secret
`
	for _, tc := range []struct {
		name string
		yaml string
		// refused names the path of the refusal; "" when zero is kept.
		refused string
		kept    func(Config) time.Duration
	}{
		{name: "fail/issuers jwks_refresh 0 is refused", yaml: issuer + "    jwks_refresh: 0s\n", refused: "issuers[0].jwks_refresh"},
		{name: "fail/introspection cache_ttl 0 is refused", yaml: introspecting + "      cache_ttl: 0\n", refused: "issuers[0].introspection.cache_ttl"},
		{name: "fail/introspection timeout 0 is refused", yaml: introspecting + "      timeout: 0s\n", refused: "issuers[0].introspection.timeout"},
		{name: "fail/bundle poll_min 0 is refused", yaml: issuer + "policy:\n  dir: \"\"\n  bundles:\n    - name: b\n      url: https://b.example/b.tar.gz\n      poll_min: 0s\n", refused: "policy.bundles[0].poll_min"},
		{name: "fail/ssf poll_interval 0 is refused", yaml: issuer + "ssf:\n  transmitters:\n    - issuer: https://t.example\n      jwks_uri: https://t.example/jwks\n      audience: pdp\n      poll_endpoint: https://t.example/poll\n      poll_interval: 0s\n", refused: "ssf.transmitters[0].poll_interval"},
		{name: "ok/dpop iat_leeway 0 means none", yaml: issuer + "dpop:\n  iat_leeway: 0s\n", kept: func(c Config) time.Duration { return c.DPoP.IATLeeway }},
		{name: "ok/clock_skew 0 means none", yaml: issuer + "clock_skew: 0\n", kept: func(c Config) time.Duration { return c.ClockSkew }},
		{name: "ok/store commit_wait 0 means no wait", yaml: issuer + "store:\n  commit_wait: 0s\n", kept: func(c Config) time.Duration { return c.Store.CommitWait }},
		{name: "ok/decide max_queue 0 means no queue", yaml: issuer + "decide:\n  max_queue: 0\n", kept: func(c Config) time.Duration { return time.Duration(c.Decide.MaxQueue) }},
		{name: "ok/decision_cache max_entries 0 means off", yaml: issuer + "decision_cache:\n  max_entries: 0\n", kept: func(c Config) time.Duration { return time.Duration(c.DecisionCache.MaxEntries) }},
		{name: "fail/dpop iat_window 0 is refused", yaml: issuer + "dpop:\n  iat_window: 0s\n", refused: "dpop.iat_window"},
		{name: "fail/decision_timeout 0 is refused", yaml: issuer + "decision_timeout: 0s\n", refused: "decision_timeout"},
		{name: "fail/store lock_timeout 0 is refused", yaml: issuer + "store:\n  lock_timeout: 0s\n", refused: "store.lock_timeout"},
		{name: "fail/ext_authz max_message_bytes 0 is refused", yaml: issuer + "ext_authz:\n  max_message_bytes: 0\n", refused: "ext_authz.max_message_bytes"},
		{name: "fail/policy max_file_bytes 0 is refused", yaml: issuer + "policy:\n  max_file_bytes: 0\n", refused: "policy.max_file_bytes"},
		{name: "fail/fingerprints writers 0 is refused", yaml: issuer + "fingerprints:\n  writers: 0\n", refused: "fingerprints.writers"},
		{name: "fail/gc_percent 0 is refused", yaml: issuer + "gc_percent: 0\n", refused: "gc_percent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Load(writeConfig(t, tc.yaml), pflag.NewFlagSet("x", pflag.ContinueOnError), nil, nil)
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused+": ") {
					t.Fatalf("Load() = %v, want %s refused", err, tc.refused)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := tc.kept(c); got != 0 {
				t.Errorf("0 became %v", got)
			}
		})
	}
}

// TestLoadNamesEveryProblemWithItsLine: type errors name the path, the
// value, the expected form and the line, all at once, together with what
// Validate finds in the rest.
func TestLoadNamesEveryProblemWithItsLine(t *testing.T) {
	path := writeConfig(t, `listen: nope
decision_timeout: fast
clock_skew: 30
metrics:
  enabled: yes
decision_logs:
  sample_rate: half
decide:
  max_queue: many
issuers:
  - issuer: https://as.example.com
    jwks_uri: https://as.example.com/jwks
    audiences: https://api.example.com
    algoritms: [ES256]
  - issuer: https://as.example.com
dpop:
  algorithms: ES256
`)
	_, err := Load(path, pflag.NewFlagSet("x", pflag.ContinueOnError), nil, nil)
	if err == nil {
		t.Fatal("Load() accepted the file")
	}
	for _, want := range []string{
		path + `:1: listen: must be host:port`,
		path + `:2: decision_timeout: "fast" is not a duration (e.g. 100ms)`,
		path + `:3: clock_skew: 30 is not a duration: give its unit`,
		path + `:5: metrics.enabled: "yes" is not true or false`,
		path + `:7: decision_logs.sample_rate: "half" is not a number`,
		path + `:9: decide.max_queue: "many" is not a whole number`,
		path + `:13: issuers[0].audiences: expects a list, not the single value "https://api.example.com"`,
		path + `:14: issuers[0].algoritms: unknown setting`,
		path + `:15: issuers[1].issuer: duplicate issuer`,
		path + `:17: dpop.algorithms: expects a list`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "issuers[0].audiences: at least one") {
		t.Errorf("a refused value is named twice:\n%v", err)
	}
}

func TestCheckFiles(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(file, []byte("{}"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := Defaults()
	c.Policy.Dir = dir
	c.Issuers = []Issuer{{Issuer: "https://a.example", JWKSFile: file, Audiences: []string{"x"}}}
	if err := c.CheckFiles(); err != nil {
		t.Fatalf("CheckFiles() = %v on files that exist", err)
	}
	c.Policy.Dir = file
	c.Issuers[0].JWKSFile = dir
	c.Admin.TokenFile = filepath.Join(dir, "missing")
	c.Revoke.Clients = []RevokeClient{{ClientID: "a", SecretFile: filepath.Join(dir, "nope.sha256")}}
	err := c.CheckFiles()
	for _, want := range []string{
		"policy.dir: " + file + " is not a directory",
		"issuers[0].jwks_file: " + dir + " is not a regular file",
		"admin.token_file: " + c.Admin.TokenFile + " does not exist",
		"revoke.clients[0].secret_file:",
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckFiles() = %v, want %q", err, want)
		}
	}
}

func TestPolicyShadow(t *testing.T) {
	load := func(t *testing.T, extra string) (Config, error) {
		t.Helper()
		return Load(writeConfig(t, validYAML+extra), pflag.NewFlagSet("x", pflag.ContinueOnError), nil, nil)
	}
	t.Run("ok/off by default, every decision sampled on one worker once on", func(t *testing.T) {
		c, err := load(t, "")
		if err != nil {
			t.Fatal(err)
		}
		if sh := c.Policy.Shadow; sh.Enabled() || sh.SampleRate != 1 || sh.MaxConcurrency != 1 {
			t.Errorf("policy.shadow = %+v, want off with sample_rate 1 and max_concurrency 1", sh)
		}
	})
	t.Run("ok/a shadow dir takes the active policy's debounce and limits", func(t *testing.T) {
		c, err := load(t, "policy:\n  debounce: 50ms\n  shadow:\n    dir: /candidate\n    sample_rate: 0.25\n")
		if err != nil {
			t.Fatal(err)
		}
		src := c.Policy.ShadowSource()
		if !c.Policy.Shadow.Enabled() || src.Dir != "/candidate" || src.Debounce != 50*time.Millisecond ||
			src.MaxFileBytes != c.Policy.MaxFileBytes || c.Policy.Shadow.SampleRate != 0.25 {
			t.Errorf("shadow source = %+v", src)
		}
	})
	t.Run("ok/signed shadow bundles get the verification defaults", func(t *testing.T) {
		c, err := load(t, "policy:\n  shadow:\n    bundles: [{name: next, path: /b/next.tar.gz}]\n    verification: {key_file: /k.pem}\n")
		if err != nil {
			t.Fatal(err)
		}
		if v := c.Policy.Shadow.Verification; v == nil || v.KeyID != "default" || v.Algorithm != "RS256" {
			t.Errorf("verification = %+v", v)
		}
	})
	t.Run("fail/every problem named under policy.shadow", func(t *testing.T) {
		_, err := load(t, `policy:
  shadow:
    dir: /candidate
    bundles: [{name: a, path: /a}, {name: a}]
    verification: {algorithm: RS256}
    sample_rate: 1.5
    max_concurrency: 0
`)
		if err == nil {
			t.Fatal("Load() = nil, want problems")
		}
		for _, want := range []string{
			"policy.shadow: dir and bundles are exclusive",
			"policy.shadow.bundles[1].name: duplicate bundle name",
			"policy.shadow.bundles[1]: needs path or url",
			"policy.shadow.verification.key_file: must be set",
			"policy.shadow.sample_rate: must be between 0 and 1",
			"policy.shadow.max_concurrency: must be at least 1",
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error does not name %q:\n%v", want, err)
			}
		}
	})
}

func TestMessagingRabbitMQ(t *testing.T) {
	load := func(t *testing.T, extra string) (Config, error) {
		t.Helper()
		return Load(writeConfig(t, validYAML+extra), pflag.NewFlagSet("x", pflag.ContinueOnError), nil, nil)
	}
	t.Run("ok/off with bounded defaults", func(t *testing.T) {
		c, err := load(t, "")
		r := c.Messaging.RabbitMQ
		if err != nil || r.Enabled || r.MaxTokens != 100_000 || r.MaxTokensPerSubject != 16 || r.MaxTokenAge != 12*time.Hour || len(r.Tags) != 0 {
			t.Fatalf("rabbitmq = %+v, %v", r, err)
		}
	})
	t.Run("ok/enabled with a credential file and tags", func(t *testing.T) {
		c, err := load(t, "messaging:\n  rabbitmq:\n    enabled: true\n    credential_file: /etc/pdp/rabbitmq\n    tags: [management]\n")
		if err != nil || !c.Messaging.RabbitMQ.Enabled || c.Messaging.RabbitMQ.Tags[0] != "management" {
			t.Fatalf("rabbitmq = %+v, %v", c.Messaging.RabbitMQ, err)
		}
	})
	for name, tc := range map[string]struct{ yaml, path string }{
		"fail/enabled without a credential": {"messaging:\n  rabbitmq:\n    enabled: true\n", "messaging.rabbitmq.credential_file:"},
		"fail/no token room":                {"messaging:\n  rabbitmq:\n    max_tokens: 0\n", "messaging.rabbitmq.max_tokens:"},
		"fail/too many per subject":         {"messaging:\n  rabbitmq:\n    max_tokens_per_subject: 5000\n", "messaging.rabbitmq.max_tokens_per_subject:"},
		"fail/token age too short":          {"messaging:\n  rabbitmq:\n    max_token_age: 1s\n", "messaging.rabbitmq.max_token_age:"},
		"fail/tag not a plain word":         {"messaging:\n  rabbitmq:\n    tags: [\"management monitoring\"]\n", "messaging.rabbitmq.tags[0]:"},
		"fail/administrator for everyone":   {"messaging:\n  rabbitmq:\n    tags: [monitoring, administrator]\n", "messaging.rabbitmq.tags[1]:"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := load(t, tc.yaml); err == nil || !strings.Contains(err.Error(), tc.path) {
				t.Fatalf("err = %v, want one naming %s", err, tc.path)
			}
		})
	}
}
