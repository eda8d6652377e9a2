package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/spf13/cobra"

	"github.com/tokenguard/pdp/internal/builtins"
	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/decisionlog"
	"github.com/tokenguard/pdp/internal/dpop"
	"github.com/tokenguard/pdp/internal/extauthz"
	"github.com/tokenguard/pdp/internal/httpapi"
	"github.com/tokenguard/pdp/internal/memlimit"
	"github.com/tokenguard/pdp/internal/metrics"
	"github.com/tokenguard/pdp/internal/natsauth"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/ssf"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// serveFlags maps each flag of `pdp serve` to its config key.
var serveFlags = map[string]string{
	"listen":      "listen",
	"data-dir":    "data_dir",
	"policy-dir":  "policy.dir",
	"environment": "environment",
	"log-level":   "log.level",
	"log-format":  "log.format",
}

func newServeCommand() *cobra.Command {
	var configFile string
	var dev, skipCheck, reset bool
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the decision API",
		Long: `Run the decision API (POST /v1/decide) with the configuration from --config,
PDP_* environment variables and flags.

--dev runs on the embedded defaults for a first look: ./data, ./rego and an
in-process dev issuer (JWKS at /dev/jwks.json, tokens from /dev/token), on
loopback only.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			var d *devMode
			adjust := func(c *config.Config) error { return nil }
			if dev {
				d = &devMode{logFormatSet: cmd.Flags().Changed("log-format") || os.Getenv(config.EnvPrefix+"_LOG_FORMAT") != ""}
				adjust = d.configure
			}
			cfg, err := config.Load(configFile, cmd.Flags(), serveFlags, adjust)
			if err != nil {
				return withNoIssuerHint(err, dev)
			}
			if f := cmd.Flags().Lookup("log-format"); dev && f.Changed {
				cfg.Log.Format = f.Value.String() // the dev mode's text, unless asked otherwise
			}
			if skipCheck {
				cfg.Store.CheckOnOpen = false
			}
			cfg.Store.Reset = reset
			return serve(ctx, cfg, d, cmd.OutOrStdout())
		},
	}
	f := c.Flags()
	f.StringVar(&configFile, "config", "", "YAML config file")
	f.BoolVar(&dev, "dev", false, "run on the embedded defaults with an in-process dev issuer (loopback only)")
	f.BoolVar(&skipCheck, "skip-store-check", false, "open pdp.db without its consistency check (store.check_on_open: false)")
	f.BoolVar(&reset, "store-reset", false, "start with an empty store where data_dir/store-id says one existed but pdp.db is missing or empty (every revocation is lost)")
	addServeFlags(c)
	return c
}

// addServeFlags adds the flags that override config keys (serveFlags).
func addServeFlags(c *cobra.Command) {
	f := c.Flags()
	f.String("listen", "", "listen address (default 127.0.0.1:8181)")
	f.String("data-dir", "", "state directory (default ./data)")
	f.String("policy-dir", "", "Rego policy directory (default ./rego)")
	f.String("environment", "", "environment exposed to policies as input.environment (default prod)")
	f.String("log-level", "", "debug, info, warn or error")
	f.String("log-format", "", "json or text")
}

// app is a wired PDP: everything serve needs but the listener.
type app struct {
	handler http.Handler
	// opsHandler serves the operations endpoints on ops.listen; nil when
	// the decision listener serves them.
	opsHandler http.Handler
	decider    *decision.Engine
	verifier   *token.Verifier
	policy     *policy.Engine
	// sources keep the policy in step with policy.dir or policy.bundles;
	// sources.Status() is the policy part of GET /v1/status.
	sources *policy.Sources
	// extAuthz is the Envoy ext_authz server; it serves only with
	// ext_authz.grpc_listen.
	extAuthz *extauthz.Server
	store    appStore
	// decisionLog uploads what it still buffers when the app closes.
	decisionLog *decisionlog.Logger
	// memLimit is the Go memory limit runtime.memory_limit chose; serve
	// applies it.
	memLimit memlimit.Limit
	// nats is the NATS auth callout service; nil unless messaging.nats.enabled.
	nats *natsauth.Service
}

// ready reports whether the policy is active and every issuer's keys are
// loaded (what /readyz reports).
func (a *app) ready() error {
	return errors.Join(a.policy.Ready(), a.verifier.Ready(), a.store.Ready())
}

// Close flushes the decision log and releases the state store.
func (a *app) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a.decisionLog.Stop(ctx)
	return a.store.Close()
}

// newApp wires the components from cfg. Background work (JWKS refresh,
// policy watching and bundle polling) runs until ctx ends. A policy that
// fails to load is logged, not fatal: /readyz stays 503 and every decision
// is a deny with policy_error until one loads.
//
// The caller closes the app (its bbolt file) after ctx ended.
func newApp(ctx context.Context, cfg config.Config, dev *devMode, logger *slog.Logger) (a *app, err error) {
	// A nil *metrics.Metrics (metrics disabled) records nothing.
	var mtr *metrics.Metrics
	var decider *decision.Engine // set below; scraped only once serving
	var verifier *token.Verifier // the same
	st, err := openStore(cfg, logger, func(c store.Check, allowed bool) { mtr.StoreUnavailable(c, allowed) })
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = st.Close()
		}
	}()
	builtins.SetStore(st)
	go func() { _ = st.RunSweeper(ctx, cfg.Store.SweepInterval) }()

	memLimit, err := memlimit.Choose(cfg.Runtime.MemoryLimit, os.Getenv("GOMEMLIMIT"), os.DirFS("/"))
	if err != nil {
		logger.Warn("runtime.memory_limit: the cgroup memory limit could not be read; no memory limit is set", "error", err)
	}
	if cfg.Metrics.Enabled {
		bundles := make([]string, 0, len(cfg.Policy.Bundles))
		for _, b := range cfg.Policy.Bundles {
			bundles = append(bundles, b.Name)
		}
		var replication func() store.SharedStatus
		if sh, ok := st.(sharedStore); ok {
			replication = sh.Shared.Status
		}
		mtr = metrics.New(metrics.Options{StoreStats: st.Stats, PolicySources: bundles, Replication: replication,
			DecisionCache: func() (int64, int64) {
				if decider == nil {
					return 0, 0
				}
				s := decider.ReuseStats()
				return s.Reused, s.Evaluated
			},
			Sightings: func() decision.SightingStats {
				if decider == nil {
					return decision.SightingStats{}
				}
				return decider.SightingStats()
			},
			CacheSizes: func() metrics.CacheSizes {
				var cs metrics.CacheSizes
				if verifier != nil {
					t := verifier.CacheStats()
					cs.TokenEntries, cs.TokenBytes, cs.TokenMaxBytes = int64(t.Entries), t.Bytes, t.MaxBytes
				}
				if decider != nil {
					d := decider.ReuseStats()
					cs.DecisionEntries, cs.DecisionBytes, cs.DecisionMaxBytes = int64(d.Entries), d.Bytes, d.MaxBytes
				}
				return cs
			}})
	}

	verifier, err = token.NewVerifier(ctx, cfg.Issuers, token.Options{Skew: cfg.ClockSkew, Logger: logger, Observer: mtr,
		CacheSize: cfg.Tokens.CacheEntries, CacheBytes: int64(cfg.Tokens.CacheBytes)})
	if err != nil {
		return nil, fmt.Errorf("issuers: %w", err)
	}
	go verifier.Run(ctx)

	var ssfHandler http.Handler
	var ssfStatus []httpapi.StatusPart
	if len(cfg.SSF.Transmitters) > 0 {
		rcv, err := ssf.NewReceiver(ctx, cfg.SSF.Transmitters, st, ssf.Options{Logger: logger, RevocationTTL: cfg.Store.RevocationTTL, Observer: mtr,
			MaxAge: cfg.SSF.MaxAge, Skew: zeroIs(cfg.ClockSkew, ssf.NoSkew)})
		if err != nil {
			return nil, fmt.Errorf("ssf: %w", err)
		}
		go func() { _ = rcv.Run(ctx) }()
		ssfHandler = rcv
		ssfStatus = append(ssfStatus, httpapi.StatusPart{Name: "ssf", Get: func(context.Context) (any, error) { return rcv.Status(), nil }})
	}
	adminCred, err := readSecret(cfg.Admin.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("admin.token_file: %w", err)
	}
	gatewayCred, err := readSecret(cfg.Decide.Auth.CredentialFile)
	if err != nil {
		return nil, fmt.Errorf("decide.auth.credential_file: %w", err)
	}
	opsCred, err := readSecret(cfg.Ops.Auth.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("ops.auth.token_file: %w", err)
	}
	revokeClients, err := readRevokeClients(cfg.Revoke.Clients)
	if err != nil {
		return nil, err
	}
	trusted, err := parsePrefixes(cfg.ForwardAuth.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("forward_auth.trusted_proxies: %w", err)
	}
	rabbitMQ, err := rabbitMQOptions(cfg.Messaging.RabbitMQ, verifier)
	if err != nil {
		return nil, err
	}
	forwardAuth := &httpapi.ForwardAuth{Style: httpapi.Style(cfg.ForwardAuth.Style), TrustedProxies: trusted,
		Credential: gatewayCred, ClientCA: cfg.Decide.Auth.ClientCAFile != ""}

	engine := policy.NewEngine(logger)
	sources, err := policy.NewSources(engine, cfg.Policy, policy.SourcesOptions{Logger: logger, Observer: mtr.Policy()})
	if err != nil {
		return nil, err
	}
	if err := sources.Load(ctx); err != nil {
		// Data with configuration errors will not fix itself: say so
		// and stop, rather than serve policy_error to everyone.
		var invalid *policy.ConfigErrorsError
		if errors.As(err, &invalid) {
			return nil, fmt.Errorf("%w\n%s", err, configErrorLines(invalid))
		}
		logger.Error("no policy activated: /readyz stays 503 and every decision is a deny with policy_error", "error", err)
	}
	go func() { _ = sources.Run(ctx) }()

	nonces, err := newNonces(cfg.DPoP.Nonce)
	if err != nil {
		return nil, fmt.Errorf("dpop.nonce: %w", err)
	}
	proofs, err := dpop.NewVerifier(st, dpop.Options{
		Algorithms: cfg.DPoP.Algorithms,
		IATWindow:  cfg.DPoP.IATWindow,
		IATLeeway:  zeroIs(cfg.DPoP.IATLeeway, dpop.NoLeeway),
		Nonces:     nonces,
	})
	if err != nil {
		return nil, fmt.Errorf("dpop: %w", err)
	}
	decider = decision.NewEngine(ctx, verifier, engine, decision.Options{
		Environment:        cfg.Environment,
		Timeout:            cfg.DecisionTimeout,
		Proofs:             proofs,
		Nonces:             nonces,
		State:              st,
		RevocationTTL:      cfg.Store.RevocationTTL,
		FingerprintQueue:   cfg.Fingerprints.Queue,
		FingerprintWriters: cfg.Fingerprints.Writers,
		MaxConcurrent:      cfg.Decide.Concurrency(),
		MaxQueue:           cfg.Decide.MaxQueue,
		MaxQueueWait:       cfg.Decide.MaxQueueWait,
		ReuseEntries:       cfg.DecisionCache.MaxEntries,
		ReuseBytes:         int64(cfg.DecisionCache.MaxBytes),
		ReuseVersionSpread: cfg.DecisionCache.VersionSpread,
		ReuseTTL:           cfg.DecisionCache.TTL,
		LogInputs:          cfg.DecisionLogs.Console || cfg.DecisionLogs.URL != "",
		Logger:             logger,
		Observer:           mtr,
	})
	var mount func(chi.Router)
	if dev != nil {
		mount = dev.mount
	}
	decisionLog, err := decisionlog.New(ctx, cfg.DecisionLogs, decisionlog.Options{Logger: logger, Console: logOutput(logger), Format: cfg.Log.Format})
	if err != nil {
		return nil, err
	}
	if mtr != nil {
		mtr.Registry().MustRegister(decisionLog.Collector())
	}
	shadow, err := newShadow(ctx, cfg, logger, mtr, decisionLog)
	if err != nil {
		return nil, err
	}
	natsSvc, err := newNATS(cfg, decider, verifier, engine, st, shadowing(decisionLog, shadow), mtr, logger)
	if err != nil {
		return nil, err
	}
	gatewayAuth := httpapi.GatewayAuth{Credential: gatewayCred, ClientCA: cfg.Decide.Auth.ClientCAFile != ""}
	if len(revokeClients) == 0 && gatewayCred == "" && cfg.Decide.Auth.ClientCAFile == "" {
		logger.Warn("POST /v1/revoke is off: no client can authenticate (set revoke.clients or decide.auth)")
	}
	opts := httpapi.Options{
		Decider:     decider,
		Logger:      logger,
		Checks:      readinessChecks(engine, verifier, st),
		Gateway:     gatewayAuth,
		ForwardAuth: forwardAuth,
		Admin: httpapi.Admin{Credential: adminCred, Store: st, RevocationTTL: cfg.Store.RevocationTTL, Backup: localStore(st),
			Issuers: issuerNames(cfg.Issuers), Explainer: decider},
		Revoke: &httpapi.Revoke{Tokens: verifier, Store: st, RevocationTTL: cfg.Store.RevocationTTL,
			Clients: revokeClients, Gateway: gatewayAuth, Observer: mtr,
			RefreshTarget: func(sid, sub string) (string, string, bool) { return engine.Settings().RefreshTarget(sid, sub) }},
		SSF:      ssfHandler,
		RabbitMQ: rabbitMQ,
		Mount:    mount,

		DecisionLog:    shadowing(decisionLog, shadow),
		Metrics:        mtr,
		MetricsHandler: mtr.Handler(),
		Status:         func() any { return sources.Status() },
		StatusParts: append([]httpapi.StatusPart{
			{Name: "store", Get: st.Status},
			{Name: "issuers", Get: func(context.Context) (any, error) { return verifier.Status(), nil }},
			{Name: "decision_logs", Get: func(context.Context) (any, error) { return decisionLog.Status(), nil }},
			{Name: "decision_cache", Get: func(context.Context) (any, error) { return decider.ReuseStats(), nil }},
			{Name: "sightings", Get: func(context.Context) (any, error) { return decider.SightingStats(), nil }},
			{Name: "token_cache", Get: func(context.Context) (any, error) { return verifier.CacheStats(), nil }},
			{Name: "runtime", Get: func(context.Context) (any, error) { return runtimeStatus{MemoryLimit: memLimit}, nil }},
		}, append(ssfStatus, shadowStatus(shadow)...)...),
		Ops:          httpapi.OpsAuth{Credential: opsCred},
		OpsElsewhere: cfg.Ops.Listen != "",
	}
	if natsSvc != nil {
		opts.StatusParts = append(opts.StatusParts, httpapi.StatusPart{Name: "nats", Get: func(context.Context) (any, error) { return natsSvc.Status(), nil }})
		if mtr != nil {
			mtr.Registry().MustRegister(natsSvc.Collector())
		}
	}
	handler := httpapi.New(opts)
	var opsHandler http.Handler
	if cfg.Ops.Listen != "" {
		opsHandler = httpapi.NewOps(opts)
	}
	var extAuthzTLS *tls.Config
	if cfg.ExtAuthz.GRPCListen != "" && cfg.TLS.CertFile != "" && !cfg.ExtAuthz.Plaintext {
		if extAuthzTLS, err = serverTLS(cfg); err != nil {
			return nil, fmt.Errorf("ext_authz: %w", err)
		}
	}
	extAuthz := extauthz.NewServer(decider, extauthz.Options{
		Logger:         logger,
		Ready:          func() error { return errors.Join(engine.Ready(), verifier.Ready(), st.Ready()) },
		DecisionLog:    shadowing(decisionLog, shadow),
		Metrics:        mtr,
		TLS:            extAuthzTLS,
		Credential:     gatewayCred,
		MaxRecvMsgSize: cfg.ExtAuthz.MaxMessageBytes,
	})
	return &app{nats: natsSvc, memLimit: memLimit, extAuthz: extAuthz, handler: handler, opsHandler: opsHandler, decider: decider, verifier: verifier, policy: engine, sources: sources, store: st,
		decisionLog: decisionLog}, nil
}

// appStore is the state store the app runs on: bbolt alone, or the shared
// (Redis) store with bbolt as the local view.
type appStore interface {
	store.Store
	RunSweeper(ctx context.Context, interval time.Duration) error
	// Ready reports whether the store can serve decisions (/readyz).
	Ready() error
	// Status is the store part of GET /v1/status.
	Status(ctx context.Context) (any, error)
}

// storeStatus is the store part of GET /v1/status.
type storeStatus struct {
	Backend string `json:"backend"`
	store.Stats
	// Replication reports, with backend redis, how current the local view
	// of the revocations is.
	Replication *store.SharedStatus `json:"replication,omitempty"`
}

// boltStore is the embedded store: ready while its file can take writes,
// no replication.
type boltStore struct{ *store.Bolt }

func (b boltStore) Ready() error { return b.Bolt.Ready() }

func (b boltStore) Status(ctx context.Context) (any, error) {
	st, err := b.Stats(ctx)
	if err != nil {
		return nil, err
	}
	return storeStatus{Backend: config.BackendBbolt, Stats: st}, nil
}

// localStore is the bbolt file of st, which backups copy.
func localStore(st appStore) *store.Bolt {
	switch s := st.(type) {
	case boltStore:
		return s.Bolt
	case sharedStore:
		return s.Local()
	}
	return nil
}

// readinessChecks are /readyz's checks, by the names its 503 answer
// gives: policy (a version active), keys (every issuer's keys loaded),
// store (the local file takes writes) and, with Redis, replication (the
// local view follows the shared revocations).
func readinessChecks(engine *policy.Engine, verifier *token.Verifier, st appStore) []httpapi.Check {
	checks := []httpapi.Check{
		{Name: "policy", Ready: engine.Ready},
		{Name: "keys", Ready: verifier.Ready},
		{Name: "store", Ready: localStore(st).Ready},
	}
	if sh, ok := st.(sharedStore); ok {
		checks = append(checks, httpapi.Check{Name: "replication", Ready: sh.FollowerReady})
	}
	return checks
}

// sharedStore is the Redis-backed store.
type sharedStore struct{ *store.Shared }

func (s sharedStore) Status(ctx context.Context) (any, error) {
	st, err := s.Stats(ctx)
	if err != nil {
		return nil, err
	}
	rep := s.Shared.Status()
	return storeStatus{Backend: config.BackendRedis, Stats: st, Replication: &rep}, nil
}

// openStore opens the state store cfg.Store names. onUnavailable is told of
// every check that met an unavailable Redis.
func openStore(cfg config.Config, logger *slog.Logger, onUnavailable func(store.Check, bool)) (appStore, error) {
	local, err := store.OpenBolt(cfg.DataDir, store.BoltOptions{LockTimeout: cfg.Store.LockTimeout, CommitWait: cfg.Store.CommitWait, Logger: logger,
		CheckTimeout: cfg.Store.CheckTimeout, SkipCheck: !cfg.Store.CheckOnOpen, Reset: cfg.Store.Reset})
	if err != nil {
		return nil, err
	}
	if cfg.Store.Backend != config.BackendRedis {
		return boltStore{local}, nil
	}
	rc := cfg.Store.Redis
	password, err := readSecret(rc.PasswordFile)
	if err != nil {
		_ = local.Close()
		return nil, fmt.Errorf("store.redis.password_file: %w", err)
	}
	var tlsConfig *tls.Config
	if rc.TLS {
		tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	shared, err := store.OpenShared(local, store.SharedOptions{
		Addrs:          rc.Addrs,
		MasterName:     rc.MasterName,
		Username:       rc.Username,
		Password:       password,
		TLS:            tlsConfig,
		KeyPrefix:      rc.KeyPrefix,
		Timeout:        rc.Timeout,
		MaxFollowerLag: rc.MaxFollowerLag,
		Replay:         store.Degradation(cfg.Store.OnUnavailable.Replay),
		Fingerprint:    store.Degradation(cfg.Store.OnUnavailable.Fingerprint),
		OnUnavailable:  onUnavailable,
		Logger:         logger,
	})
	if err != nil {
		_ = local.Close()
		return nil, err
	}
	logger.Info("state store: redis, with bbolt as the local view of revocations", "addrs", rc.Addrs, "key_prefix", rc.KeyPrefix)
	return sharedStore{shared}, nil
}

// runtimeStatus is the runtime part of GET /v1/status.
type runtimeStatus struct {
	MemoryLimit memlimit.Limit `json:"memory_limit"`
}

// serve runs the PDP until ctx ends, then drains in-flight requests.
func serve(ctx context.Context, cfg config.Config, dev *devMode, out io.Writer) error {
	logger := newLogger(cfg.Log, os.Stderr)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(cfg.GCPercent)
	}
	a, err := newApp(ctx, cfg, dev, logger)
	if err != nil {
		return err
	}
	defer a.Close()
	memlimit.Apply(a.memLimit)
	logger.Info("go memory limit", "bytes", a.memLimit.Bytes, "source", a.memLimit.Source, "cgroup_bytes", a.memLimit.Cgroup)
	ln, err := listenHTTP(cfg, cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := httpapi.NewServer(a.handler, logger)
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	logger.Info("serving", "listen", ln.Addr().String(), "environment", cfg.Environment, "policy_dir", cfg.Policy.Dir)
	var opsSrv *http.Server
	var opsAddr, extAuthzAddr string
	if a.opsHandler != nil {
		oln, err := listenHTTP(cfg, cfg.Ops.Listen)
		if err != nil {
			_ = srv.Close()
			return fmt.Errorf("ops.listen: %w", err)
		}
		opsSrv = httpapi.NewServer(a.opsHandler, logger)
		go func() { errc <- opsSrv.Serve(oln) }()
		opsAddr = oln.Addr().String()
		logger.Info("serving the operations endpoints", "ops_listen", oln.Addr().String())
	}
	var extAuthzDone chan error // stays nil (never ready) when ext_authz is off
	if cfg.ExtAuthz.GRPCListen != "" {
		gln, err := net.Listen("tcp", cfg.ExtAuthz.GRPCListen)
		if err != nil {
			return fmt.Errorf("ext_authz.grpc_listen: %w", err)
		}
		extAuthzDone = make(chan error, 1)
		go func() { extAuthzDone <- a.extAuthz.Serve(ctx, gln) }()
		extAuthzAddr = gln.Addr().String()
		logger.Info("serving ext_authz", "grpc_listen", gln.Addr().String())
	}
	natsDone, err := runNATS(ctx, cfg.Messaging.NATS, a.nats)
	if err != nil {
		_ = srv.Close()
		return err
	}
	b := newBanner(cfg, a, ln.Addr().String(), extAuthzAddr, opsAddr)
	b.log(logger)
	if dev != nil {
		b.write(out)
		dev.announce(out, ln.Addr().String())
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case err := <-extAuthzDone:
		return fmt.Errorf("ext_authz: %w", err)
	case err := <-natsDone:
		if err != nil || ctx.Err() == nil {
			return fmt.Errorf("messaging.nats: the auth callout service stopped: %v", err)
		}
		natsDone = nil // stopped with ctx, as the rest is about to
	case <-ctx.Done():
	}
	logger.Info("shutting down: draining in-flight requests")
	sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("shutdown: %w", err)
	}
	if opsSrv != nil {
		if err := opsSrv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("shutdown: %w", err)
		}
	}
	if natsDone != nil { // drained before the deferred a.Close() closes the store
		if err := <-natsDone; err != nil {
			return fmt.Errorf("messaging.nats: %w", err)
		}
	}
	if extAuthzDone != nil { // drained before the deferred a.Close() closes the store
		if err := <-extAuthzDone; err != nil {
			return fmt.Errorf("ext_authz: %w", err)
		}
	}
	return nil
}

// listenHTTP opens an HTTP listener at addr, with the tls section's
// certificate when one is set. The decision and the ops listener both use it.
func listenHTTP(cfg config.Config, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if cfg.TLS.CertFile != "" {
		tc, err := serverTLS(cfg)
		if err != nil {
			_ = ln.Close()
			return nil, err
		}
		ln = tls.NewListener(ln, tc)
	}
	return ln, nil
}

// newNonces returns the DPoP nonce issuer, or nil when nonces are off. The
// secret comes from its file (shared by replicas) or is random per process.
func newNonces(c config.DPoPNonce) (*dpop.Nonces, error) {
	if !c.Enabled {
		return nil, nil
	}
	secret := make([]byte, 32)
	if c.SecretFile != "" {
		s, err := readSecret(c.SecretFile)
		if err != nil {
			return nil, err
		}
		secret = []byte(s)
	} else if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	return dpop.NewNonces(secret, c.TTL)
}

// parsePrefixes reads CIDRs (or single addresses) of trusted gateways.
func parsePrefixes(ss []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range ss {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, err2 := netip.ParseAddr(s)
			if err2 != nil {
				return nil, err
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// serverTLS is the listener's TLS: TLS 1.2+, and, with decide.auth's client
// CA, client certificates verified when given (the gateway middleware then
// admits a verified gateway).
func serverTLS(cfg config.Config) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if f := cfg.Decide.Auth.ClientCAFile; f != "" {
		pemBytes, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("decide.auth.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return nil, fmt.Errorf("decide.auth.client_ca_file: no PEM certificate in %s", f)
		}
		tc.ClientCAs, tc.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return tc, nil
}

// readSecret reads a credential file; "" when path is empty. Surrounding
// white space (a trailing newline) is not part of the secret.
func readSecret(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// readRevokeClients reads the secret hash of every revoke client.
func readRevokeClients(cs []config.RevokeClient) ([]httpapi.RevokeClient, error) {
	out := make([]httpapi.RevokeClient, 0, len(cs))
	for i, c := range cs {
		data, err := readBounded(c.SecretFile, httpapi.MaxSecretHashFile)
		if err == nil {
			var sum [32]byte
			if sum, err = httpapi.ParseSecretHash(data); err == nil {
				out = append(out, httpapi.RevokeClient{ID: c.ClientID, SecretSHA256: sum, Issuer: c.Issuer})
				continue
			}
		}
		return nil, fmt.Errorf("revoke.clients[%d].secret_file: %w", i, err)
	}
	return out, nil
}

// readBounded reads a file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return data, nil
}

func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	out := &lockedWriter{w: w}
	if c.Format == "text" {
		return slog.New(outputHandler{slog.NewTextHandler(out, opts), out})
	}
	return slog.New(outputHandler{slog.NewJSONHandler(out, opts), out})
}

// outputHandler is the process log's handler with its destination, which
// the console decision log writes to as well.
type outputHandler struct {
	slog.Handler
	out io.Writer
}

// logOutput is where logger writes, when newLogger made it; else the
// console decision log is discarded (a test's logger).
func logOutput(logger *slog.Logger) io.Writer {
	if h, ok := logger.Handler().(outputHandler); ok {
		return h.out
	}
	return io.Discard
}

// lockedWriter serialises whole writes: a process log record and a batch
// of console decision-log lines never interleave.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
