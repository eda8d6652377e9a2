package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"

	"github.com/nats-io/nkeys"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/metrics"
	"github.com/tokenguard/pdp/internal/natsauth"
	"github.com/tokenguard/pdp/internal/policy"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// maxSeedFile bounds an nkey seed file (a seed is 58 characters).
const maxSeedFile = 4 << 10

// newNATS builds the NATS auth callout service of messaging.nats; nil when
// it is not enabled.
func newNATS(cfg config.Config, decider *decision.Engine, verifier *token.Verifier, engine *policy.Engine, st store.Store,
	decisionLog natsauth.DecisionLogger, mtr *metrics.Metrics, logger *slog.Logger) (*natsauth.Service, error) {
	n := cfg.Messaging.NATS
	if !n.Enabled {
		return nil, nil
	}
	issuer, err := readSeed(n.IssuerSeedFile, nkeys.FromSeed)
	if err != nil {
		return nil, fmt.Errorf("messaging.nats.issuer_seed_file: %w", err)
	}
	var xkey nkeys.KeyPair
	if n.XKeySeedFile != "" {
		if xkey, err = readSeed(n.XKeySeedFile, nkeys.FromCurveSeed); err != nil {
			return nil, fmt.Errorf("messaging.nats.xkey_seed_file: %w", err)
		}
	}
	svc, err := natsauth.New(decider, verifier, st, natsauth.Options{
		Issuer: issuer, XKey: xkey, Account: n.Account, MaxLifetime: cfg.Messaging.MaxConnectionLifetime,
		MaxConnections: n.MaxConnections, CheckInterval: n.CheckInterval, Logger: logger, DecisionLog: decisionLog, Metrics: mtr,
		Destinations: func() []natsauth.Destination { return natsDestinations(engine.Settings()) },
	})
	if err != nil {
		return nil, fmt.Errorf("messaging.nats: %w", err)
	}
	return svc, nil
}

// natsDestinations is the destination table of the active policy version.
func natsDestinations(s policy.Settings) []natsauth.Destination {
	out := make([]natsauth.Destination, 0, len(s.Destinations))
	for _, d := range s.Destinations {
		out = append(out, natsauth.Destination{Broker: d.Broker, Destination: d.Destination, Operations: d.Operations})
	}
	return out
}

// runNATS connects the service's two users and runs it until ctx ends; the
// channel gets Run's result. A nil service (NATS off) returns a nil
// channel, which never delivers.
func runNATS(ctx context.Context, n config.NATS, svc *natsauth.Service) (<-chan error, error) {
	if svc == nil {
		return nil, nil
	}
	var password string
	var err error
	if n.CredentialsFile == "" {
		if password, err = readSecret(n.PasswordFile); err != nil {
			return nil, fmt.Errorf("messaging.nats.password_file: %w", err)
		}
	}
	sysPassword, err := readSecret(n.SystemPasswordFile)
	if err != nil {
		return nil, fmt.Errorf("messaging.nats.system_password_file: %w", err)
	}
	callout, err := natsauth.Dial(natsauth.ConnOptions{URL: n.URL, User: n.User, Password: password, CredentialsFile: n.CredentialsFile,
		Name: "tokenguard-callout"})
	if err != nil {
		return nil, fmt.Errorf("messaging.nats.url: %w", err)
	}
	system, err := natsauth.Dial(natsauth.ConnOptions{URL: n.URL, User: n.SystemUser, Password: sysPassword, Name: "tokenguard-system"})
	if err != nil {
		callout.Close()
		return nil, fmt.Errorf("messaging.nats.url: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx, callout, system, n.QueueGroup) }()
	return done, nil
}

// readSeed reads an nkey seed file with parse (nkeys.FromSeed or
// FromCurveSeed); surrounding white space is not part of the seed.
func readSeed(path string, parse func([]byte) (nkeys.KeyPair, error)) (nkeys.KeyPair, error) {
	data, err := readBounded(path, maxSeedFile)
	if err != nil {
		return nil, err
	}
	kp, err := parse(bytes.TrimSpace(data))
	if err != nil {
		return nil, fmt.Errorf("%s does not hold an nkey seed of the right kind: %w", path, err)
	}
	return kp, nil
}
