package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/decisionlog"
	"github.com/tokenguard/pdp/internal/httpapi"
	"github.com/tokenguard/pdp/internal/metrics"
	"github.com/tokenguard/pdp/internal/policy"
)

// newShadow loads policy.shadow into an engine of its own, watches or polls
// its source like the active policy's, and returns its evaluation; nil when
// no shadow policy is configured. A shadow version that is refused keeps
// the last good one; a shadow that never loaded is logged, and shows in
// /v1/status (shadow.last_error) and as pdp_shadow_decisions_total{result=
// "error"}, never in readiness: no answer depends on it.
func newShadow(ctx context.Context, cfg config.Config, logger *slog.Logger, mtr *metrics.Metrics, log *decisionlog.Logger) (*decision.Shadow, error) {
	if !cfg.Policy.Shadow.Enabled() {
		return nil, nil
	}
	logger = logger.With("policy", "shadow")
	engine := policy.NewEngine(logger)
	sources, err := policy.NewSources(engine, cfg.Policy.ShadowSource(), policy.SourcesOptions{Logger: logger, Shadow: true})
	if err != nil {
		return nil, fmt.Errorf("policy.shadow: %w", err)
	}
	if err := sources.Load(ctx); err != nil {
		logger.Error("no shadow policy activated: sampled decisions count as shadow errors until one loads; no answer is affected", "error", err)
	}
	go func() { _ = sources.Run(ctx) }()
	name := cfg.Policy.Shadow.Dir
	if name == "" {
		names := make([]string, 0, len(cfg.Policy.Shadow.Bundles))
		for _, b := range cfg.Policy.Shadow.Bundles {
			names = append(names, b.Name)
		}
		name = strings.Join(names, ",")
	}
	return decision.NewShadow(ctx, engine, decision.ShadowOptions{
		SampleRate:     cfg.Policy.Shadow.SampleRate,
		MaxConcurrency: cfg.Policy.Shadow.MaxConcurrency,
		Timeout:        cfg.DecisionTimeout,
		Observer:       mtr,
		Logger:         logger,
		Disagreed: func(d decision.Disagreement) {
			log.Log(ctx, decisionlog.Entry{Decision: d.Decision, Time: d.Time, Shadow: &d.Shadow})
		},
		Describe: func() (source, revision, lastError string) {
			st := sources.Status()
			if st.Active != nil {
				revision = st.Active.Revision
			}
			for _, s := range st.Sources {
				if s.State == policy.StateFailed {
					lastError = s.LastError
					break
				}
			}
			return name, revision, lastError
		},
	}), nil
}

// decisionLogger is what the transports log decisions to (httpapi's and
// extauthz's DecisionLogger).
type decisionLogger interface {
	Log(ctx context.Context, e decisionlog.Entry)
}

// shadowingLog hands every decision, once its answer is written (the
// transports log a decision after its answer), to the shadow policy, then
// to the decision log.
type shadowingLog struct {
	log    *decisionlog.Logger
	shadow *decision.Shadow
}

func (s shadowingLog) Log(ctx context.Context, e decisionlog.Entry) {
	s.log.Log(ctx, e)
	s.shadow.Offer(e.Decision)
}

// shadowing is log, with the decisions handed to shadow as well when a
// shadow policy is configured.
func shadowing(log *decisionlog.Logger, shadow *decision.Shadow) decisionLogger {
	if shadow == nil {
		return log
	}
	return shadowingLog{log: log, shadow: shadow}
}

// shadowStatus is the shadow part of GET /v1/status; none without a shadow
// policy (the member is left out rather than null).
func shadowStatus(shadow *decision.Shadow) []httpapi.StatusPart {
	if shadow == nil {
		return nil
	}
	return []httpapi.StatusPart{{Name: "shadow", Get: func(context.Context) (any, error) { return shadow.Status(), nil }}}
}
