// Package config holds tokenguard's configuration: one struct per section,
// the defaults in one place, and Validate, which names every problem by its
// config path.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Config is the whole configuration of a pdp process.
type Config struct {
	// Listen is the address of the HTTP decision API.
	Listen string `mapstructure:"listen"`
	// DataDir holds the bbolt state file (DataDir/pdp.db).
	DataDir string `mapstructure:"data_dir"`
	// Environment is exposed to Rego as input.environment (e.g. prod, staging).
	Environment string `mapstructure:"environment"`
	// Policy says where the Rego policies come from.
	Policy Policy `mapstructure:"policy"`
	// DecisionTimeout bounds one decision, token verification included.
	DecisionTimeout time.Duration `mapstructure:"decision_timeout"`
	// DecisionCache configures the reuse of decisions for repeated
	// requests with the same bearer token.
	DecisionCache DecisionCache `mapstructure:"decision_cache"`
	// Tokens configures the cache of verified access tokens.
	Tokens Tokens `mapstructure:"tokens"`
	// ClockSkew is the leeway applied to exp, nbf and iat checks.
	ClockSkew time.Duration `mapstructure:"clock_skew"`
	// Issuers are the authorization servers whose tokens are accepted.
	Issuers []Issuer `mapstructure:"issuers"`
	// DPoP configures the verification of DPoP proofs (RFC 9449).
	DPoP DPoP `mapstructure:"dpop"`
	// Fingerprints configures the recording of bearer-token fingerprints.
	Fingerprints Fingerprints `mapstructure:"fingerprints"`
	// Store configures the guardrail state (revocations, fingerprints, ...).
	Store Store `mapstructure:"store"`
	// Admin configures the admin API.
	Admin Admin `mapstructure:"admin"`
	// SSF configures the Shared Signals receiver.
	SSF SSF `mapstructure:"ssf"`
	// Revoke configures who may call POST /v1/revoke (RFC 7009).
	Revoke Revoke `mapstructure:"revoke"`
	// TLS, when set, serves the HTTP API over TLS.
	TLS TLS `mapstructure:"tls"`
	// Decide configures who may ask for decisions.
	Decide Decide `mapstructure:"decide"`
	// ExtAuthz configures the Envoy external authorization gRPC listener.
	ExtAuthz ExtAuthz `mapstructure:"ext_authz"`
	// ForwardAuth configures /v1/forward-auth for nginx, Traefik and Caddy.
	ForwardAuth ForwardAuth `mapstructure:"forward_auth"`
	// DecisionLogs configures decision logging.
	DecisionLogs DecisionLogs `mapstructure:"decision_logs"`
	// Metrics configures the Prometheus endpoint.
	Metrics Metrics `mapstructure:"metrics"`
	// Ops configures where the operations endpoints (/metrics, /v1/status,
	// /healthz, /readyz) are served and who may read them.
	Ops Ops `mapstructure:"ops"`
	// Log configures the process log.
	Log Log `mapstructure:"log"`
	// GCPercent is the Go garbage collector's target (GOGC) for pdp serve;
	// the GOGC environment variable, when set, wins. Policy evaluation
	// allocates short-lived values on every decision and the live heap is
	// small, so collecting less often buys CPU for little memory.
	GCPercent int `mapstructure:"gc_percent"`
	// Runtime configures the Go runtime of pdp serve.
	Runtime Runtime `mapstructure:"runtime"`
	// Messaging configures the message-broker integrations.
	Messaging Messaging `mapstructure:"messaging"`
}

// Messaging configures the message-broker integrations: the brokers ask
// the PDP when a client connects (and, for some, on each operation), with
// the access token the client connected with.
type Messaging struct {
	// MaxConnectionLifetime caps how long a broker connection authorized
	// with a token lives before it must connect (and be decided) again,
	// whatever the token's exp.
	MaxConnectionLifetime time.Duration `mapstructure:"max_connection_lifetime"`
	// NATS makes the PDP a NATS auth callout service.
	NATS NATS `mapstructure:"nats"`
	// RabbitMQ serves RabbitMQ's HTTP auth backend (rabbitmq_auth_backend_http)
	// at /v1/rabbitmq/{user,vhost,resource,topic}.
	RabbitMQ RabbitMQ `mapstructure:"rabbitmq"`
}

// Runtime configures the Go runtime of pdp serve.
type Runtime struct {
	// MemoryLimit is the Go runtime's soft memory limit (GOMEMLIMIT): the
	// garbage collector works harder as the heap nears it, instead of the
	// process growing into the container's limit and being killed. auto
	// (the default) sets it to 90% of the cgroup memory limit when one is
	// set (cgroup v2 memory.max or v1 memory.limit_in_bytes) and sets none
	// otherwise; off sets none; a byte size (e.g. 900MiB) sets that. The
	// GOMEMLIMIT environment variable, when set, wins. The limit chosen is
	// logged at start and shown in /v1/status.
	MemoryLimit string `mapstructure:"memory_limit"`
}

// Memory limit modes of runtime.memory_limit, besides a byte size.
const (
	MemoryLimitAuto = "auto"
	MemoryLimitOff  = "off"
)

// MinMemoryLimit is the smallest memory limit runtime.memory_limit may set.
const MinMemoryLimit = 64 << 20

// Tokens configures the cache of verified access tokens: a token presented
// again within its life is not verified (or introspected) again. Both
// bounds hold; an insertion into a full cache evicts expired entries first,
// then those that expire soonest.
type Tokens struct {
	// CacheEntries bounds the number of verified tokens kept.
	CacheEntries int `mapstructure:"cache_entries"`
	// CacheBytes bounds the heap the kept tokens take, by an estimate of
	// each entry (its claims, the token's hash, the cache key; a typical
	// JWT's entry is 2 to 3 KiB). A byte size: 64MiB, 1GiB or a plain
	// number of bytes.
	CacheBytes ByteSize `mapstructure:"cache_bytes"`
}

// SSF configures the Shared Signals (CAEP/RISC) receiver.
type SSF struct {
	// Transmitters are the trusted senders of security event tokens.
	Transmitters []Transmitter `mapstructure:"transmitters"`
	// MaxAge is how old (by iat) a SET may be when it is pushed or polled;
	// older ones are refused with invalid_request ("the SET is too old").
	// Applied SETs are remembered in the store for MaxAge + clock_skew
	// after their iat, so that a replay is recognised across restarts and
	// replicas. A SET whose iat is more than clock_skew ahead is refused
	// too.
	MaxAge time.Duration `mapstructure:"max_age"`
}

// Transmitter is one trusted Shared Signals transmitter.
type Transmitter struct {
	// Issuer is the exact "iss" of its SETs.
	Issuer string `mapstructure:"issuer"`
	// JWKSURI is where its signing keys are fetched (https, or http on loopback).
	JWKSURI string `mapstructure:"jwks_uri"`
	// JWKSFile is a local JWKS document, the alternative to JWKSURI.
	JWKSFile string `mapstructure:"jwks_file"`
	// Audience is the "aud" its SETs must carry (this receiver's identifier).
	Audience string `mapstructure:"audience"`
	// TokenIssuers are the access-token issuers whose subjects its events
	// name (default: Issuer). An event about a subject cuts off that
	// subject's tokens from each of them.
	TokenIssuers []string `mapstructure:"token_issuers"`
	// PollEndpoint, when set, is polled for SETs (RFC 8936) instead of
	// waiting for pushes.
	PollEndpoint string `mapstructure:"poll_endpoint"`
	// PollInterval is the pause between polls. SETs received are
	// acknowledged at once, on a poll of their own, not an interval later.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// PollTokenFile holds the bearer credential for the poll endpoint.
	PollTokenFile string `mapstructure:"poll_token_file"`
}

// Revoke configures client authentication at POST /v1/revoke (RFC 7009
// §2.1). A client may revoke only the tokens issued to it; a gateway
// authenticated as in decide.auth (credential or client certificate) may
// revoke any. Without clients and without decide.auth, /v1/revoke is not
// served.
type Revoke struct {
	// Clients are the clients that authenticate with client_secret_basic or
	// client_secret_post.
	Clients []RevokeClient `mapstructure:"clients"`
}

// RevokeClient is one client allowed to revoke its own tokens.
type RevokeClient struct {
	// ClientID is the client's id, compared with the token's client_id
	// (else azp, else cid).
	ClientID string `mapstructure:"client_id"`
	// SecretFile holds the lowercase hex SHA-256 of the client's secret
	// (64 characters), never the secret itself. The secret must be a
	// generated value of at least 32 characters.
	SecretFile string `mapstructure:"secret_file"`
	// Issuer is the issuer (issuers[].issuer) that registered the client:
	// only its tokens are the client's, since another issuer may have a
	// client of the same id. Required with more than one issuer; with one,
	// empty means that one.
	Issuer string `mapstructure:"issuer"`
}

// Policy says where the Rego policies and their data come from.
type Policy struct {
	// Dir holds Rego modules and data files (data.json / data.yaml), loaded
	// like `opa run` loads a directory. *_test.rego files are not served.
	// It is watched: an edit takes effect without a restart. Empty when the
	// policy comes from bundles only.
	Dir string `mapstructure:"dir"`
	// Debounce is how long the watcher waits for edits to settle.
	Debounce time.Duration `mapstructure:"debounce"`
	// Bundles are OPA bundles to serve instead of Dir: a local directory
	// or .tar.gz (watched), or a remote bundle service polled with ETags.
	Bundles []Bundle `mapstructure:"bundles"`
	// Verification, when set, refuses unsigned or wrongly signed bundles.
	Verification *Verification `mapstructure:"verification"`
	// TestOnLoad runs a new policy's own *_test.rego before activating it;
	// a failing test keeps the previous policy serving.
	TestOnLoad bool `mapstructure:"test_on_load"`
	// MaxFileBytes bounds each file of a policy source (a module or data
	// file of the directory or of a bundle, uncompressed). A version with a
	// larger file is refused before it is read; the previous one keeps
	// serving. Policy data takes far more memory than its JSON: about 25
	// times its size while it is loaded.
	MaxFileBytes int64 `mapstructure:"max_file_bytes"`
	// MaxTotalBytes bounds all files of one policy source together (the
	// directory, or a bundle uncompressed; a downloaded bundle's compressed
	// body too), like MaxFileBytes.
	MaxTotalBytes int64 `mapstructure:"max_total_bytes"`
	// Shadow is a second policy, evaluated on a sample of live decisions
	// after their answer is sent, to see what it would change; it never
	// changes an answer nor writes state. Off unless dir or bundles is set.
	Shadow Shadow `mapstructure:"shadow"`
}

// Shadow is the shadow policy's source, the same shapes as the active
// policy's (dir, or bundles with verification; debounce and size limits
// are the active policy's), and the share of decisions it sees.
type Shadow struct {
	// Dir holds the shadow policy's Rego modules and data, watched like
	// policy.dir.
	Dir string `mapstructure:"dir"`
	// Bundles are OPA bundles to shadow with instead of a dir, read like
	// policy.bundles.
	Bundles []Bundle `mapstructure:"bundles"`
	// Verification, when set, refuses unsigned or wrongly signed shadow
	// bundles.
	Verification *Verification `mapstructure:"verification"`
	// TestOnLoad runs a new shadow version's own *_test.rego before it is
	// used; a failing test keeps the last good shadow version.
	TestOnLoad bool `mapstructure:"test_on_load"`
	// SampleRate is the fraction of evaluated decisions the shadow policy
	// evaluates too, between 0 and 1.
	SampleRate float64 `mapstructure:"sample_rate"`
	// MaxConcurrency bounds the shadow evaluations that run at once (the
	// CPU the shadow may take); a sampled decision that finds every one
	// busy is skipped and counted, never waited for.
	MaxConcurrency int `mapstructure:"max_concurrency"`
}

// Enabled reports whether a shadow policy is configured.
func (s Shadow) Enabled() bool { return s.Dir != "" || len(s.Bundles) > 0 }

// ShadowSource is the shadow policy as a policy source: its dir or
// bundles, with the active policy's debounce and size limits.
func (p Policy) ShadowSource() Policy {
	s := p.Shadow
	return Policy{Dir: s.Dir, Bundles: s.Bundles, Verification: s.Verification, TestOnLoad: s.TestOnLoad,
		Debounce: p.Debounce, MaxFileBytes: p.MaxFileBytes, MaxTotalBytes: p.MaxTotalBytes}
}

// Default size limits of a policy source.
const (
	DefaultPolicyMaxFileBytes  = 64 << 20
	DefaultPolicyMaxTotalBytes = 64 << 20
)

// Bundle is one OPA bundle source.
type Bundle struct {
	// Name identifies the bundle in status, logs and metrics.
	Name string `mapstructure:"name"`
	// Path is a local bundle directory or .tar.gz file (watched).
	Path string `mapstructure:"path"`
	// URL is the bundle's address on a remote bundle service (https, or
	// http on loopback), polled with ETags.
	URL string `mapstructure:"url"`
	// CredentialsFile holds a bearer credential for the bundle service.
	CredentialsFile string `mapstructure:"credentials_file"`
	// PollMin is the shortest pause between two polls of a URL bundle
	// (the pause is random between PollMin and PollMax).
	PollMin time.Duration `mapstructure:"poll_min"`
	// PollMax is the longest pause between two polls of a URL bundle.
	PollMax time.Duration `mapstructure:"poll_max"`
}

// Verification configures bundle signature verification (OPA's
// .signatures.json).
type Verification struct {
	// KeyFile holds the public key (PEM) or HMAC secret that verifies.
	KeyFile string `mapstructure:"key_file"`
	// KeyID is the key's id, as bundles name it ("kid"). Default "default".
	KeyID string `mapstructure:"key_id"`
	// Algorithm is the signing algorithm. Default RS256.
	Algorithm string `mapstructure:"algorithm"`
	// Scope, when set, must equal the signature's scope.
	Scope string `mapstructure:"scope"`
}

// TLS configures the HTTP listener's TLS.
type TLS struct {
	// CertFile holds the server certificate chain (PEM); set both or neither.
	CertFile string `mapstructure:"cert_file"`
	// KeyFile holds the certificate's private key (PEM).
	KeyFile string `mapstructure:"key_file"`
}

// Decide configures gateway authentication for the decision endpoints
// (/v1/decide, /v1/forward-auth; without it any caller that reaches the
// listener may ask), and the admission control in front of policy
// evaluation on every transport (ext_authz too).
type Decide struct {
	// Auth admits only gateways to the decision endpoints: a shared bearer
	// credential or a client CA; either one is enough.
	Auth DecideAuth `mapstructure:"auth"`
	// MaxConcurrent bounds the policy evaluations that run at once; 0
	// means 2 × GOMAXPROCS (see Concurrency). Decisions answered from the
	// decision cache do not count.
	MaxConcurrent int `mapstructure:"max_concurrent"`
	// MaxQueue is how many evaluations more may wait for a turn; 0 means
	// none wait. Beyond, the answer is an immediate overloaded deny (503,
	// Retry-After).
	MaxQueue int `mapstructure:"max_queue"`
	// MaxQueueWait bounds one evaluation's wait in the queue (and
	// decision_timeout does too); when it runs out the answer is an
	// overloaded deny.
	MaxQueueWait time.Duration `mapstructure:"max_queue_wait"`
}

// Concurrency is MaxConcurrent, or 2 × GOMAXPROCS when it is 0: policy
// evaluation is CPU-bound, with short waits on the store.
func (d Decide) Concurrency() int {
	if d.MaxConcurrent > 0 {
		return d.MaxConcurrent
	}
	return 2 * runtime.GOMAXPROCS(0)
}

// DecideAuth is a shared bearer credential or a client CA (mTLS, needs
// tls); either one admits a gateway.
type DecideAuth struct {
	// CredentialFile holds a bearer credential gateways present.
	CredentialFile string `mapstructure:"credential_file"`
	// ClientCAFile holds the CA certificates (PEM) that gateway client
	// certificates must chain to.
	ClientCAFile string `mapstructure:"client_ca_file"`
}

// ExtAuthz configures Envoy's external authorization (gRPC), which Istio's
// CUSTOM authorization uses too.
//
// Gateways authenticate as in decide.auth: credential_file (sent as
// x-tokenguard-gateway gRPC metadata) or client_ca_file (a verified client
// certificate, over TLS).
type ExtAuthz struct {
	// GRPCListen is the gRPC listener's address (e.g. 127.0.0.1:9191);
	// empty: off.
	GRPCListen string `mapstructure:"grpc_listen"`
	// Plaintext serves gRPC without TLS even when tls.cert_file is set
	// (Envoy as a sidecar on loopback).
	Plaintext bool `mapstructure:"plaintext"`
	// MaxMessageBytes bounds one CheckRequest.
	MaxMessageBytes int `mapstructure:"max_message_bytes"`
}

// ForwardAuth configures the forward-auth endpoint.
type ForwardAuth struct {
	// Style is the gateway in front: nginx, traefik or caddy. Only that
	// gateway's headers are read (nginx: X-Original-Method, -URI, -Proto,
	// Host, X-Real-IP; traefik and caddy: X-Forwarded-Method, -Uri, -Proto,
	// -Host, -For); the other family is ignored. A wrong style fails closed:
	// the request-line headers are missing and every answer is a 400.
	Style string `mapstructure:"style"`
	// TrustedProxies are the gateway addresses (CIDRs) whose forwarded
	// request line, client IP and client certificate are believed. The
	// shared gateway credential of decide.auth (X-Tokenguard-Gateway
	// header) or a verified gateway client certificate makes them trusted
	// too. Anyone else gets a 400: what would be decided is unknown.
	TrustedProxies []string `mapstructure:"trusted_proxies"`
}

// RabbitMQ configures the endpoints RabbitMQ's HTTP auth backend calls. A
// client connects with its token's subject as the username and the access
// token as the password; /user verifies and decides the token and keeps it
// (its hash and verified claims, until it expires), and the later /vhost,
// /resource and /topic checks, which carry the username alone, are
// decided for the tokens kept for that subject.
type RabbitMQ struct {
	// Enabled serves /v1/rabbitmq/*.
	Enabled bool `mapstructure:"enabled"`
	// CredentialFile holds the HTTP Basic credential RabbitMQ calls with,
	// as username:password (the userinfo of the auth_http.*_path URLs):
	// letters, digits and -._~ only, a password of at least 32 characters.
	// Required when enabled.
	CredentialFile string `mapstructure:"credential_file"`
	// Tags are the RabbitMQ user tags every allowed /user answer carries
	// ("allow management"); none by default. A tag applies to every token
	// holder: never administrator.
	Tags []string `mapstructure:"tags"`
	// MaxTokens bounds the verified tokens kept, all subjects together; a
	// /user check beyond it, once the expired ones are dropped, is answered
	// 503 (the connection is refused).
	MaxTokens int `mapstructure:"max_tokens"`
	// MaxTokensPerSubject bounds the tokens kept for one subject; a newer
	// one replaces the one seen least recently.
	MaxTokensPerSubject int `mapstructure:"max_tokens_per_subject"`
	// MaxTokenAge bounds how long a token is kept after it was last
	// presented, when it expires later or never (introspection).
	MaxTokenAge time.Duration `mapstructure:"max_token_age"`
}

// ForwardAuthStyles are the gateways whose forward-auth headers are known.
var ForwardAuthStyles = []string{"nginx", "traefik", "caddy"}

// DecisionLogs configures decision logging: one JSON line per decision
// with the member names of OPA's decision-log events.
type DecisionLogs struct {
	// Console writes decisions to the process log.
	Console bool `mapstructure:"console"`
	// Queue bounds the decisions handed over and not yet written; when it
	// is full a decision's entry is dropped (and counted in
	// pdp_decision_logs_dropped_total), never its answer delayed.
	Queue int `mapstructure:"queue"`
	// URL, when set, uploads decisions to a remote decision-log service.
	URL string `mapstructure:"url"`
	// CredentialsFile holds a bearer credential for the service.
	CredentialsFile string `mapstructure:"credentials_file"`
	// DropAllows drops allowed decisions from the logs.
	DropAllows bool `mapstructure:"drop_allows"`
	// SampleRate logs this fraction of decisions (denies and errors always).
	SampleRate float64 `mapstructure:"sample_rate"`
}

// Metrics configures GET /metrics (Prometheus).
type Metrics struct {
	// Enabled serves /metrics.
	Enabled bool `mapstructure:"enabled"`
}

// Ops configures the operations endpoints. /metrics and /v1/status tell
// issuer URLs, key and revocation counts, the policy's source and its
// errors; /healthz and /readyz are probes and stay open to everyone.
type Ops struct {
	// Listen, when set (host:port), serves /metrics, /v1/status, /healthz
	// and /readyz on a listener of their own, with the tls section's
	// certificate when one is set; the decision listener then no longer
	// serves /metrics and /v1/status (it keeps the probes). Empty: the
	// decision listener serves them all.
	Listen string `mapstructure:"listen"`
	// Auth protects /metrics and /v1/status.
	Auth OpsAuth `mapstructure:"auth"`
}

// OpsAuth is the bearer credential of /metrics and /v1/status. Without
// it, on the decision listener, they need decide.auth's gateway
// credential or client certificate when decide.auth is set, and are open
// otherwise; on ops.listen they are open.
type OpsAuth struct {
	// TokenFile holds the bearer credential (Authorization: Bearer ...)
	// that /metrics and /v1/status require, on whichever listener serves
	// them.
	TokenFile string `mapstructure:"token_file"`
}

// Issuer is one trusted authorization server.
type Issuer struct {
	// Issuer is the exact "iss" value of its tokens.
	Issuer string `mapstructure:"issuer"`
	// JWKSURI is where its signing keys are fetched (https, or http on loopback).
	JWKSURI string `mapstructure:"jwks_uri"`
	// JWKSFile is a local JWKS document, the alternative to JWKSURI.
	JWKSFile string `mapstructure:"jwks_file"`
	// JWKSRefresh is how often the keys are fetched again.
	JWKSRefresh time.Duration `mapstructure:"jwks_refresh"`
	// Audiences: a token must carry at least one of them in "aud".
	Audiences []string `mapstructure:"audiences"`
	// Algorithms is the signature algorithm allow-list.
	Algorithms []string `mapstructure:"algorithms"`
	// AccessTokenType, when set, is the required JWT "typ" (RFC 9068 at+jwt).
	AccessTokenType string `mapstructure:"access_token_type"`
	// Introspection, when set, verifies opaque tokens through RFC 7662.
	Introspection *Introspection `mapstructure:"introspection"`
}

// Introspection is an RFC 7662 endpoint for opaque tokens.
type Introspection struct {
	// Endpoint is the introspection URL.
	Endpoint string `mapstructure:"endpoint"`
	// ClientID authenticates the PDP at the endpoint (HTTP Basic).
	ClientID string `mapstructure:"client_id"`
	// ClientSecretFile holds the client secret.
	ClientSecretFile string `mapstructure:"client_secret_file"`
	// CacheTTL caps how long an active answer is cached (never past exp).
	CacheTTL time.Duration `mapstructure:"cache_ttl"`
	// Timeout bounds one introspection call.
	Timeout time.Duration `mapstructure:"timeout"`
}

// DPoP configures DPoP proof verification. Whether a missing or invalid
// proof denies is the policy's business (modes.dpop); these are the checks.
type DPoP struct {
	// Algorithms is the proof signature allow-list (asymmetric only).
	Algorithms []string `mapstructure:"algorithms"`
	// IATWindow is how old a proof may be; its jti is remembered as long.
	IATWindow time.Duration `mapstructure:"iat_window"`
	// IATLeeway is how far in the future a proof's iat may lie.
	IATLeeway time.Duration `mapstructure:"iat_leeway"`
	// Nonce configures server-provided nonces (RFC 9449 §8).
	Nonce DPoPNonce `mapstructure:"nonce"`
}

// DPoPNonce configures server nonces: when enabled every proof must carry a
// nonce this PDP (or a replica with the same secret) issued.
type DPoPNonce struct {
	// Enabled requires server nonces: a proof without the current one is
	// answered dpop_nonce_required with a fresh nonce in DPoP-Nonce.
	Enabled bool `mapstructure:"enabled"`
	// TTL is how long a nonce stays valid.
	TTL time.Duration `mapstructure:"ttl"`
	// SecretFile holds the nonce MAC secret (at least 32 bytes); replicas
	// share it. Empty: a random secret per process.
	SecretFile string `mapstructure:"secret_file"`
}

// DecisionCache configures decision reuse: a decision for a bearer token is
// kept and answers the same request again (same token, and the same input
// fields the policy reads) while the policy version is the same, the
// decision's valid_until has not passed and every revocation and
// fingerprint look-up it was made on still gives the same answer; those
// look-ups run again for every reuse.
type DecisionCache struct {
	// MaxEntries bounds the decisions kept; 0 turns reuse off.
	MaxEntries int `mapstructure:"max_entries"`
	// TTL bounds how long one decision is kept, whatever its valid_until.
	TTL time.Duration `mapstructure:"ttl"`
	// MaxBytes bounds the heap the kept decisions take, by an estimate of
	// each (its answer and the store answers it was made on, about 1 KiB;
	// the token's claims are the token cache's). A byte size: 32MiB, 1GiB
	// or a plain number of bytes.
	MaxBytes ByteSize `mapstructure:"max_bytes"`
	// VersionSpread spreads over this long the re-evaluation of the kept
	// decisions a new policy version replaces: each kept decision of the
	// version just replaced is still answered until a random moment within
	// VersionSpread of the activation (revocations and every other store
	// answer are checked again as always), so that a busy replica does not
	// re-evaluate every warm token at once and shed load. The
	// re-evaluations cost CPU in proportion to the warm tokens over this
	// spread: 20s keeps a one-core replica's 1,300 warm tokens at about a
	// tenth of its CPU. 0: a new version applies to every request at once.
	VersionSpread time.Duration `mapstructure:"version_spread"`
}

// Fingerprints configures how bearer-token sightings are recorded after
// allowed decisions (asynchronously, bounded).
type Fingerprints struct {
	// Queue bounds the sightings waiting to be written; past it sightings
	// are dropped (and counted), never blocking a decision.
	Queue int `mapstructure:"queue"`
	// Writers is the number of concurrent writers (their commits share
	// fsyncs).
	Writers int `mapstructure:"writers"`
}

// Store configures the guardrail state: kept in bbolt at data_dir/pdp.db
// (backend bbolt, one process), or shared by several replicas through Redis
// with bbolt as each replica's local view of the revocations (backend
// redis).
type Store struct {
	// Backend is bbolt (the default) or redis.
	Backend string `mapstructure:"backend"`
	// Redis is the shared state, with backend redis.
	Redis Redis `mapstructure:"redis"`
	// OnUnavailable says what the checks that need the shared state do
	// while Redis cannot be reached.
	OnUnavailable OnUnavailable `mapstructure:"on_unavailable"`
	// RevocationTTL is how long a revocation applies; it must outlive the
	// longest-lived token it is meant to stop.
	RevocationTTL time.Duration `mapstructure:"revocation_ttl"`
	// SweepInterval is the pause between two sweeps of expired entries. A
	// sweep removes 256 entries per transaction and rests between two
	// (four times as long as the last took), so that the writes decisions
	// make never queue behind a whole backlog.
	SweepInterval time.Duration `mapstructure:"sweep_interval"`
	// LockTimeout bounds the wait for the data file's lock: a second process
	// on the same data_dir fails after it instead of hanging.
	LockTimeout time.Duration `mapstructure:"lock_timeout"`
	// CommitWait is how long a bbolt write transaction (DPoP replay
	// checks, revocations, single sightings) waits for more writes to share
	// its fsync, when writes are arriving together; 0: none.
	CommitWait time.Duration `mapstructure:"commit_wait"`
	// CheckOnOpen runs the consistency check of pdp.db at start; turn it
	// off (or start with --skip-store-check) for files too large to check
	// at every start.
	CheckOnOpen bool `mapstructure:"check_on_open"`
	// CheckTimeout bounds the consistency check at start; a check that
	// does not finish in time fails the start, naming both keys.
	CheckTimeout time.Duration `mapstructure:"check_timeout"`
	// Reset lets the server start with an empty store where the store-id
	// file says a store existed but pdp.db is missing or empty. Only the
	// --store-reset flag of pdp serve sets it: never the file or the
	// environment, where it would stay on and defeat the check.
	Reset bool `mapstructure:"-"`
}

// Store backends.
const (
	BackendBbolt = "bbolt"
	BackendRedis = "redis"
)

// Redis configures the connection to the shared state (Redis or Valkey),
// standalone, Sentinel or Cluster.
type Redis struct {
	// Addrs are host:port addresses: one for a standalone server, several
	// for a cluster, or the Sentinels when MasterName is set.
	Addrs []string `mapstructure:"addrs"`
	// MasterName names the master monitored by the Sentinels at Addrs.
	MasterName string `mapstructure:"master_name"`
	// Username is the ACL user; empty for the default user.
	Username string `mapstructure:"username"`
	// PasswordFile holds the password (trailing white space trimmed); it
	// is never written into the config.
	PasswordFile string `mapstructure:"password_file"`
	// TLS connects with TLS, verified against the system roots.
	TLS bool `mapstructure:"tls"`
	// KeyPrefix starts every key, so that deployments can share a server.
	KeyPrefix string `mapstructure:"key_prefix"`
	// Timeout bounds every Redis call. It must be shorter than
	// decision_timeout: a decision makes at most one call to Redis, and
	// its failure is answered as on_unavailable says.
	Timeout time.Duration `mapstructure:"timeout"`
	// MaxFollowerLag is how long a replica's copy of the revocations may
	// go without being known current before /readyz reports it not ready:
	// a replica that cannot see new revocations is taken out of rotation.
	MaxFollowerLag time.Duration `mapstructure:"max_follower_lag"`
}

// OnUnavailable is what a check that needs the shared state does while Redis
// cannot be reached: deny (a deny with reason state_unavailable, status
// 503) or let it pass with a state_unavailable warning (allow_with_reason;
// monitor for the fingerprint guardrail, which is then skipped).
type OnUnavailable struct {
	// Replay applies to the DPoP proof replay check and the refresh-token
	// reuse check: deny or allow_with_reason.
	Replay string `mapstructure:"replay"`
	// Fingerprint applies to the bearer-token fingerprint guardrail:
	// monitor or deny.
	Fingerprint string `mapstructure:"fingerprint"`
}

// Admin configures the admin API.
type Admin struct {
	// TokenFile holds the bearer credential of the admin API. Without it the
	// admin API is off.
	TokenFile string `mapstructure:"token_file"`
}

// Log configures the process log.
type Log struct {
	// Level is debug, info, warn or error.
	Level string `mapstructure:"level"`
	// Format is json or text.
	Format string `mapstructure:"format"`
}

// SupportedAlgorithms are the asymmetric JWS algorithms an issuer may allow.
var SupportedAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// Defaults returns the configuration every process starts from.
func Defaults() Config {
	return Config{
		Listen:      "127.0.0.1:8181",
		DataDir:     "./data",
		Environment: "prod",
		Policy: Policy{Dir: "./rego", Debounce: 200 * time.Millisecond, MaxFileBytes: DefaultPolicyMaxFileBytes, MaxTotalBytes: DefaultPolicyMaxTotalBytes,
			Shadow: Shadow{SampleRate: 1, MaxConcurrency: 1}},
		DecisionLogs:    DecisionLogs{Console: true, SampleRate: 1, Queue: DefaultDecisionLogQueue},
		Metrics:         Metrics{Enabled: true},
		DecisionTimeout: 100 * time.Millisecond,
		DecisionCache:   DecisionCache{MaxEntries: 50_000, TTL: 5 * time.Minute, MaxBytes: 32 << 20, VersionSpread: 20 * time.Second},
		Tokens:          Tokens{CacheEntries: 100_000, CacheBytes: 64 << 20},
		Runtime:         Runtime{MemoryLimit: MemoryLimitAuto},
		ClockSkew:       30 * time.Second,
		DPoP: DPoP{
			Algorithms: []string{"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"},
			IATWindow:  60 * time.Second,
			IATLeeway:  5 * time.Second,
			Nonce:      DPoPNonce{TTL: 5 * time.Minute},
		},
		Fingerprints: Fingerprints{Queue: 4096, Writers: 4},
		ExtAuthz:     ExtAuthz{MaxMessageBytes: 1 << 20},
		ForwardAuth:  ForwardAuth{Style: "nginx"},
		Decide:       Decide{MaxQueue: 64, MaxQueueWait: 20 * time.Millisecond},
		Store: Store{
			RevocationTTL: 30 * 24 * time.Hour,
			SweepInterval: time.Minute,
			LockTimeout:   time.Second,
			CommitWait:    500 * time.Microsecond,
			CheckOnOpen:   true,
			CheckTimeout:  10 * time.Second,
			Backend:       BackendBbolt,
			Redis:         Redis{KeyPrefix: "pdp:", Timeout: 50 * time.Millisecond, MaxFollowerLag: 5 * time.Second},
			OnUnavailable: OnUnavailable{Replay: "deny", Fingerprint: "monitor"},
		},
		SSF:       SSF{MaxAge: 24 * time.Hour},
		Log:       Log{Level: "info", Format: "json"},
		GCPercent: 400,
		Messaging: Messaging{MaxConnectionLifetime: 5 * time.Minute,
			NATS:     NATS{URL: "nats://127.0.0.1:4222", QueueGroup: "tokenguard", CheckInterval: 2 * time.Second, MaxConnections: 100_000},
			RabbitMQ: RabbitMQ{MaxTokens: 100_000, MaxTokensPerSubject: 16, MaxTokenAge: 12 * time.Hour}},
	}
}

// Issuer defaults, applied by ApplyDefaults to every issuer.
const (
	DefaultJWKSRefresh       = 5 * time.Minute
	DefaultIntrospectionTTL  = time.Minute
	DefaultIntrospectTimeout = 2 * time.Second
)

// DefaultDecisionLogQueue is decision_logs.queue's default.
const DefaultDecisionLogQueue = 8192

// DefaultAlgorithms is the allow-list of an issuer that names none.
var DefaultAlgorithms = []string{"ES256", "RS256", "PS256", "EdDSA"}

// ApplyDefaults fills the per-issuer defaults that a flat default map cannot.
func (c *Config) ApplyDefaults() {
	c.applySSFDefaults()
	for _, bundles := range [][]Bundle{c.Policy.Bundles, c.Policy.Shadow.Bundles} {
		for i := range bundles {
			b := &bundles[i]
			if b.URL != "" && b.PollMin == 0 {
				b.PollMin, b.PollMax = 10*time.Second, max(b.PollMax, 30*time.Second)
			}
		}
	}
	for _, v := range []*Verification{c.Policy.Verification, c.Policy.Shadow.Verification} {
		if v == nil {
			continue
		}
		if v.KeyID == "" {
			v.KeyID = "default"
		}
		if v.Algorithm == "" {
			v.Algorithm = "RS256"
		}
	}
	for i := range c.Issuers {
		is := &c.Issuers[i]
		if is.JWKSRefresh == 0 {
			is.JWKSRefresh = DefaultJWKSRefresh
		}
		if len(is.Algorithms) == 0 {
			is.Algorithms = slices.Clone(DefaultAlgorithms)
		}
		if in := is.Introspection; in != nil {
			if in.CacheTTL == 0 {
				in.CacheTTL = DefaultIntrospectionTTL
			}
			if in.Timeout == 0 {
				in.Timeout = DefaultIntrospectTimeout
			}
		}
	}
}

// applySSFDefaults fills the per-transmitter defaults.
func (c *Config) applySSFDefaults() {
	for i := range c.SSF.Transmitters {
		t := &c.SSF.Transmitters[i]
		if len(t.TokenIssuers) == 0 && t.Issuer != "" {
			t.TokenIssuers = []string{t.Issuer}
		}
		if t.PollEndpoint != "" && t.PollInterval == 0 {
			t.PollInterval = DefaultPollInterval
		}
	}
}

// validateBundles reports the problems of a list of bundle sources, named
// under prefix (policy.bundles, policy.shadow.bundles).
func validateBundles(prefix string, bundles []Bundle, bad func(path, format string, args ...any)) {
	names := map[string]bool{}
	for i, b := range bundles {
		p := fmt.Sprintf("%s[%d]", prefix, i)
		switch {
		case b.Name == "":
			bad(p+".name", "must be set")
		case names[b.Name]:
			bad(p+".name", "duplicate bundle name %q", b.Name)
		}
		names[b.Name] = true
		switch {
		case b.Path == "" && b.URL == "":
			bad(p, "needs path or url")
		case b.Path != "" && b.URL != "":
			bad(p, "path and url are exclusive")
		case b.URL != "":
			if err := checkFetchURL(b.URL); err != nil {
				bad(p+".url", "%v", err)
			}
		}
		if b.PollMin < 0 || b.PollMax < b.PollMin {
			bad(p+".poll_max", "must not be less than poll_min")
		}
	}
}

// DefaultPollInterval is the pause between two SET polls.
const DefaultPollInterval = 30 * time.Second

// Validate reports every problem, each named by its config path.
func (c *Config) Validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, &Problem{Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "must be host:port: %v", err)
	}
	if c.DataDir == "" {
		bad("data_dir", "must be set")
	}
	if c.Policy.Dir == "" && len(c.Policy.Bundles) == 0 {
		bad("policy", "needs dir or bundles")
	}
	if c.Policy.Dir != "" && len(c.Policy.Bundles) > 0 {
		bad("policy", "dir and bundles are exclusive")
	}
	if c.Policy.Debounce < 10*time.Millisecond || c.Policy.Debounce > 2*time.Second {
		bad("policy.debounce", "must be between 10ms and 2s")
	}
	if c.Policy.MaxFileBytes <= 0 {
		bad("policy.max_file_bytes", "must be positive")
	}
	if c.Policy.MaxTotalBytes < c.Policy.MaxFileBytes {
		bad("policy.max_total_bytes", "must not be less than policy.max_file_bytes")
	}
	validateBundles("policy.bundles", c.Policy.Bundles, bad)
	if v := c.Policy.Verification; v != nil && v.KeyFile == "" {
		bad("policy.verification.key_file", "must be set")
	}
	if sh := c.Policy.Shadow; sh.Enabled() {
		if sh.Dir != "" && len(sh.Bundles) > 0 {
			bad("policy.shadow", "dir and bundles are exclusive")
		}
		validateBundles("policy.shadow.bundles", sh.Bundles, bad)
		if v := sh.Verification; v != nil && v.KeyFile == "" {
			bad("policy.shadow.verification.key_file", "must be set")
		}
		if sh.Verification != nil && sh.Dir != "" {
			bad("policy.shadow.verification", "only bundles carry signatures; shadow a signed bundle instead of a dir")
		}
	}
	if r := c.Policy.Shadow.SampleRate; !(r >= 0 && r <= 1) {
		bad("policy.shadow.sample_rate", "must be between 0 and 1")
	}
	if c.Policy.Shadow.MaxConcurrency < 1 {
		bad("policy.shadow.max_concurrency", "must be at least 1")
	}
	if c.Ops.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Ops.Listen); err != nil {
			bad("ops.listen", "must be host:port: %v", err)
		} else if c.Ops.Listen == c.Listen || c.Ops.Listen == c.ExtAuthz.GRPCListen {
			bad("ops.listen", "must differ from listen and ext_authz.grpc_listen")
		}
	}
	if c.ExtAuthz.GRPCListen != "" {
		if _, _, err := net.SplitHostPort(c.ExtAuthz.GRPCListen); err != nil {
			bad("ext_authz.grpc_listen", "must be host:port: %v", err)
		}
		plaintext := c.ExtAuthz.Plaintext || c.TLS.CertFile == ""
		if plaintext && c.Decide.Auth.ClientCAFile != "" && c.Decide.Auth.CredentialFile == "" {
			bad("ext_authz.plaintext", "client certificates cannot authenticate gateways without TLS")
		}
	}
	if c.ExtAuthz.MaxMessageBytes <= 0 {
		bad("ext_authz.max_message_bytes", "must be positive")
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls", "cert_file and key_file go together")
	}
	if c.Decide.Auth.ClientCAFile != "" && c.TLS.CertFile == "" {
		bad("decide.auth.client_ca_file", "needs tls.cert_file and tls.key_file")
	}
	if !slices.Contains(ForwardAuthStyles, c.ForwardAuth.Style) {
		bad("forward_auth.style", "%q is not one of %s", c.ForwardAuth.Style, strings.Join(ForwardAuthStyles, ", "))
	}
	for i, cidr := range c.ForwardAuth.TrustedProxies {
		if _, err := netip.ParsePrefix(cidr); err != nil {
			if _, err2 := netip.ParseAddr(cidr); err2 != nil {
				bad(fmt.Sprintf("forward_auth.trusted_proxies[%d]", i), "%q is not a CIDR or an IP address", cidr)
			}
		}
	}
	if c.DecisionLogs.URL != "" {
		if err := checkFetchURL(c.DecisionLogs.URL); err != nil {
			bad("decision_logs.url", "%v", err)
		}
	}
	if c.DecisionLogs.Queue < 1 || c.DecisionLogs.Queue > 1<<20 {
		bad("decision_logs.queue", "must be between 1 and 1048576")
	}
	if c.DecisionLogs.SampleRate < 0 || c.DecisionLogs.SampleRate > 1 {
		bad("decision_logs.sample_rate", "must be between 0 and 1")
	}
	if c.DecisionTimeout <= 0 {
		bad("decision_timeout", "must be positive")
	}
	if c.Decide.MaxConcurrent < 0 || c.Decide.MaxConcurrent > 100_000 {
		bad("decide.max_concurrent", "must be between 0 (2 × GOMAXPROCS) and 100000")
	}
	if c.Decide.MaxQueue < 0 || c.Decide.MaxQueue > 1_000_000 {
		bad("decide.max_queue", "must be between 0 and 1000000")
	}
	if c.Decide.MaxQueue > 0 && (c.Decide.MaxQueueWait <= 0 || c.Decide.MaxQueueWait >= c.DecisionTimeout) {
		bad("decide.max_queue_wait", "must be positive and shorter than decision_timeout")
	}
	if c.DecisionCache.MaxEntries < 0 || c.DecisionCache.MaxEntries > 10_000_000 {
		bad("decision_cache.max_entries", "must be between 0 (off) and 10000000")
	}
	if c.DecisionCache.MaxEntries > 0 && (c.DecisionCache.TTL < time.Millisecond || c.DecisionCache.TTL > time.Hour) {
		bad("decision_cache.ttl", "must be between 1ms and 1h")
	}
	if c.DecisionCache.VersionSpread < 0 || c.DecisionCache.VersionSpread > time.Minute {
		bad("decision_cache.version_spread", "must be between 0 (a new policy version applies at once) and 1m")
	}
	if c.DecisionCache.MaxEntries > 0 {
		if err := checkByteRange(c.DecisionCache.MaxBytes, 1<<20, 16<<30); err != nil {
			bad("decision_cache.max_bytes", "%v", err)
		}
	}
	if c.Tokens.CacheEntries < 1 || c.Tokens.CacheEntries > 10_000_000 {
		bad("tokens.cache_entries", "must be between 1 and 10000000")
	}
	if err := checkByteRange(c.Tokens.CacheBytes, 1<<20, 16<<30); err != nil {
		bad("tokens.cache_bytes", "%v", err)
	}
	switch c.Runtime.MemoryLimit {
	case MemoryLimitAuto, MemoryLimitOff:
	default:
		if n, err := ParseByteSize(c.Runtime.MemoryLimit); err != nil {
			bad("runtime.memory_limit", "must be auto, off or a byte size: %v", err)
		} else if err := checkByteRange(ByteSize(n), MinMemoryLimit, 1<<50); err != nil {
			bad("runtime.memory_limit", "%v", err)
		}
	}
	if c.GCPercent < 25 || c.GCPercent > 2000 {
		bad("gc_percent", "must be between 25 and 2000")
	}
	if c.ClockSkew < 0 || c.ClockSkew > 5*time.Minute {
		bad("clock_skew", "must be between 0 and 5m")
	}
	if len(c.Issuers) == 0 {
		bad("issuers", "%v", ErrNoIssuers)
	}
	for j, alg := range c.DPoP.Algorithms {
		if !slices.Contains(SupportedAlgorithms, alg) {
			bad(fmt.Sprintf("dpop.algorithms[%d]", j), "%q is not an allowed asymmetric algorithm", alg)
		}
	}
	if len(c.DPoP.Algorithms) == 0 {
		bad("dpop.algorithms", "at least one algorithm is required")
	}
	if c.DPoP.IATWindow < time.Second || c.DPoP.IATWindow > 10*time.Minute {
		bad("dpop.iat_window", "must be between 1s and 10m")
	}
	if c.DPoP.IATLeeway < 0 || c.DPoP.IATLeeway > time.Minute {
		bad("dpop.iat_leeway", "must be between 0 and 1m")
	}
	if c.DPoP.Nonce.Enabled && (c.DPoP.Nonce.TTL < 10*time.Second || c.DPoP.Nonce.TTL > time.Hour) {
		bad("dpop.nonce.ttl", "must be between 10s and 1h")
	}
	if c.Fingerprints.Queue < 1 || c.Fingerprints.Queue > 1<<20 {
		bad("fingerprints.queue", "must be between 1 and 1048576")
	}
	if c.Fingerprints.Writers < 1 || c.Fingerprints.Writers > 64 {
		bad("fingerprints.writers", "must be between 1 and 64")
	}
	if c.Store.RevocationTTL < time.Hour {
		bad("store.revocation_ttl", "must be at least 1h (it must outlive the tokens it stops)")
	}
	if c.Store.SweepInterval < time.Second {
		bad("store.sweep_interval", "must be at least 1s")
	}
	if c.Store.LockTimeout <= 0 || c.Store.LockTimeout > time.Minute {
		bad("store.lock_timeout", "must be between 0 and 1m")
	}
	if c.Store.CommitWait < 0 || c.Store.CommitWait > 10*time.Millisecond {
		bad("store.commit_wait", "must be between 0 and 10ms")
	}
	if c.Store.CheckTimeout < time.Second || c.Store.CheckTimeout > time.Hour {
		bad("store.check_timeout", "must be between 1s and 1h")
	}
	switch c.Store.Backend {
	case BackendBbolt:
	case BackendRedis:
		rc := c.Store.Redis
		if len(rc.Addrs) == 0 {
			bad("store.redis.addrs", "must name at least one host:port with backend redis")
		}
		for i, a := range rc.Addrs {
			if _, _, err := net.SplitHostPort(a); err != nil {
				bad(fmt.Sprintf("store.redis.addrs[%d]", i), "must be host:port: %v", err)
			}
		}
		if rc.MasterName != "" && len(rc.Addrs) == 0 {
			bad("store.redis.master_name", "needs the Sentinel addresses in store.redis.addrs")
		}
		if rc.KeyPrefix == "" || len(rc.KeyPrefix) > 64 {
			bad("store.redis.key_prefix", "must be 1 to 64 bytes long")
		}
		if strings.ContainsAny(rc.KeyPrefix, "{} \t\r\n") {
			bad("store.redis.key_prefix", "must not contain braces or white space (braces are cluster hash tags)")
		}
		if rc.Timeout < time.Millisecond || rc.Timeout > 10*time.Second {
			bad("store.redis.timeout", "must be between 1ms and 10s")
		} else if c.DecisionTimeout > 0 && rc.Timeout >= c.DecisionTimeout {
			bad("store.redis.timeout", "must be shorter than decision_timeout (%s), so that an unavailable Redis is answered as store.on_unavailable says", c.DecisionTimeout)
		}
		if rc.MaxFollowerLag < 2*time.Second || rc.MaxFollowerLag > time.Hour {
			bad("store.redis.max_follower_lag", "must be between 2s (the follower's blocking read takes 1s) and 1h")
		}
	default:
		bad("store.backend", "must be bbolt or redis, not %q", c.Store.Backend)
	}
	if r := c.Store.OnUnavailable.Replay; r != "deny" && r != "allow_with_reason" {
		bad("store.on_unavailable.replay", "must be deny or allow_with_reason, not %q", r)
	}
	if f := c.Store.OnUnavailable.Fingerprint; f != "deny" && f != "monitor" {
		bad("store.on_unavailable.fingerprint", "must be monitor or deny, not %q", f)
	}
	seen := map[string]bool{}
	introspecting := 0
	for i, is := range c.Issuers {
		p := fmt.Sprintf("issuers[%d]", i)
		switch u, err := url.Parse(is.Issuer); {
		case is.Issuer == "":
			bad(p+".issuer", "must be set")
		case err != nil || u.Scheme == "" || u.Host == "":
			bad(p+".issuer", "must be an absolute URL")
		case seen[is.Issuer]:
			bad(p+".issuer", "duplicate issuer %q", is.Issuer)
		}
		seen[is.Issuer] = true
		switch {
		case is.JWKSURI == "" && is.JWKSFile == "" && is.Introspection == nil:
			bad(p, "needs jwks_uri, jwks_file or introspection")
		case is.JWKSURI != "" && is.JWKSFile != "":
			bad(p, "jwks_uri and jwks_file are exclusive")
		}
		if is.JWKSURI != "" {
			if err := checkFetchURL(is.JWKSURI); err != nil {
				bad(p+".jwks_uri", "%v", err)
			}
		}
		if is.JWKSRefresh < time.Minute {
			bad(p+".jwks_refresh", "must be at least 1m")
		}
		if len(is.Audiences) == 0 {
			bad(p+".audiences", "at least one audience is required")
		}
		for j, a := range is.Audiences {
			if a == "" {
				bad(fmt.Sprintf("%s.audiences[%d]", p, j), "must not be empty")
			}
		}
		for j, alg := range is.Algorithms {
			if !slices.Contains(SupportedAlgorithms, alg) {
				bad(fmt.Sprintf("%s.algorithms[%d]", p, j), "%q is not an allowed asymmetric algorithm (one of %s)", alg, strings.Join(SupportedAlgorithms, ", "))
			}
		}
		switch strings.ToLower(is.AccessTokenType) {
		case "", "at+jwt", "application/at+jwt":
		default:
			bad(p+".access_token_type", "must be at+jwt or application/at+jwt")
		}
		if in := is.Introspection; in != nil {
			introspecting++
			ip := p + ".introspection"
			if err := checkFetchURL(in.Endpoint); err != nil {
				bad(ip+".endpoint", "%v", err)
			}
			if in.ClientID == "" {
				bad(ip+".client_id", "must be set")
			}
			if in.ClientSecretFile == "" {
				bad(ip+".client_secret_file", "must be set")
			}
			if in.CacheTTL < 0 || in.CacheTTL > time.Hour {
				bad(ip+".cache_ttl", "must be between 0 and 1h")
			}
			if in.Timeout <= 0 || in.Timeout > 30*time.Second {
				bad(ip+".timeout", "must be between 0 and 30s")
			}
		}
	}
	if introspecting > 1 {
		bad("issuers", "only one issuer may introspect opaque tokens (an opaque token names no issuer, and it must not be sent to the wrong one)")
	}
	clientIDs := map[string]bool{}
	for i, rc := range c.Revoke.Clients {
		p := fmt.Sprintf("revoke.clients[%d]", i)
		switch {
		case rc.ClientID == "" || len(rc.ClientID) > 256:
			bad(p+".client_id", "must be 1 to 256 bytes")
		case clientIDs[rc.ClientID]:
			bad(p+".client_id", "duplicate client %q", rc.ClientID)
		}
		clientIDs[rc.ClientID] = true
		if rc.SecretFile == "" {
			bad(p+".secret_file", "must be set")
		}
		switch {
		case rc.Issuer == "" && len(c.Issuers) > 1:
			bad(p+".issuer", "must name the client's issuer when more than one issuer is configured (client ids are per issuer)")
		case rc.Issuer != "" && !slices.ContainsFunc(c.Issuers, func(is Issuer) bool { return is.Issuer == rc.Issuer }):
			bad(p+".issuer", "%q is not one of issuers[].issuer", rc.Issuer)
		}
	}
	if c.SSF.MaxAge < time.Minute || c.SSF.MaxAge > 30*24*time.Hour {
		bad("ssf.max_age", "must be between 1m and 720h")
	}
	for i, t := range c.SSF.Transmitters {
		p := fmt.Sprintf("ssf.transmitters[%d]", i)
		if u, err := url.Parse(t.Issuer); t.Issuer == "" || err != nil || u.Scheme == "" || u.Host == "" {
			bad(p+".issuer", "must be an absolute URL")
		}
		switch {
		case t.JWKSURI == "" && t.JWKSFile == "":
			bad(p, "needs jwks_uri or jwks_file")
		case t.JWKSURI != "" && t.JWKSFile != "":
			bad(p, "jwks_uri and jwks_file are exclusive")
		case t.JWKSURI != "":
			if err := checkFetchURL(t.JWKSURI); err != nil {
				bad(p+".jwks_uri", "%v", err)
			}
		}
		if t.Audience == "" {
			bad(p+".audience", "must be set")
		}
		if t.PollEndpoint != "" {
			if err := checkFetchURL(t.PollEndpoint); err != nil {
				bad(p+".poll_endpoint", "%v", err)
			}
			if t.PollInterval < time.Second {
				bad(p+".poll_interval", "must be at least 1s")
			}
		}
	}
	c.validateMessaging(bad)
	c.Messaging.RabbitMQ.validate("messaging.rabbitmq", bad)
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "must be debug, info, warn or error")
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		bad("log.format", "must be json or text")
	}
	return errors.Join(errs...)
}

// checkFetchURL accepts https URLs, and http only on loopback.
func checkFetchURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return errors.New("must be an absolute URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
		return errors.New("must be https (http only on loopback)")
	default:
		return errors.New("must be https (http only on loopback)")
	}
}

// validate reports the problems of the rabbitmq section, named under path.
func (r RabbitMQ) validate(path string, bad func(path, format string, args ...any)) {
	if r.Enabled && r.CredentialFile == "" {
		bad(path+".credential_file", "must be set when enabled: RabbitMQ authenticates to the decision point")
	}
	if r.MaxTokens < 1 || r.MaxTokens > 10_000_000 {
		bad(path+".max_tokens", "must be between 1 and 10000000")
	}
	if r.MaxTokensPerSubject < 1 || r.MaxTokensPerSubject > 1024 {
		bad(path+".max_tokens_per_subject", "must be between 1 and 1024")
	}
	if r.MaxTokenAge < time.Minute || r.MaxTokenAge > 7*24*time.Hour {
		bad(path+".max_token_age", "must be between 1m and 168h")
	}
	if len(r.Tags) > 8 {
		bad(path+".tags", "at most 8 tags")
	}
	for i, tag := range r.Tags {
		if !isRabbitTag(tag) {
			bad(fmt.Sprintf("%s.tags[%d]", path, i), "must be 1 to 32 of a-z, 0-9 and _, starting with a letter")
		}
		if tag == "administrator" {
			bad(fmt.Sprintf("%s.tags[%d]", path, i), "administrator would make every token holder a RabbitMQ administrator")
		}
	}
}

// isRabbitTag reports whether s is a plain RabbitMQ user tag.
func isRabbitTag(s string) bool {
	if s == "" || len(s) > 32 || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
			return false
		}
	}
	return true
}
