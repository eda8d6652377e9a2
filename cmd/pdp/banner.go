package main

import (
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/tokenguard/pdp/internal/config"
)

// banner is what a started PDP says about itself: one structured log
// line ("tokenguard started"), and a readable block in dev mode.
type banner struct {
	Version, Revision string
	Store, DataDir    string
	// Issuers are "issuer: key status" lines.
	Issuers []string
	// Decide, ExtAuthz and Ops are the listeners' addresses; "" when off
	// (Ops: served by the decision listener).
	Decide, ExtAuthz, Ops string
	Admin                 bool
	DecisionLogs          string
	PolicySource          string
	PolicyRevision        string
}

// newBanner gathers the banner of a started app.
func newBanner(cfg config.Config, a *app, decide, extAuthz, ops string) banner {
	bi := readBuildInfo()
	b := banner{Version: bi.Version, Revision: bi.Revision, Store: cfg.Store.Backend, DataDir: cfg.DataDir,
		Decide: decide, ExtAuthz: extAuthz, Ops: ops, Admin: cfg.Admin.TokenFile != ""}
	for _, is := range a.verifier.Status() {
		status := fmt.Sprintf("%d keys loaded", is.Keys)
		switch {
		case is.Source == "introspection":
			status = "introspection"
		case !is.Loaded && is.LastError != "":
			status = "no keys loaded yet: " + is.LastError
		case !is.Loaded:
			status = "keys not loaded yet"
		}
		b.Issuers = append(b.Issuers, is.Issuer+" ("+is.Source+", "+status+")")
	}
	var logs []string
	if cfg.DecisionLogs.Console {
		logs = append(logs, "console")
	}
	if cfg.DecisionLogs.URL != "" {
		logs = append(logs, "remote")
	}
	b.DecisionLogs = "off"
	if len(logs) > 0 {
		b.DecisionLogs = strings.Join(logs, "+")
	}
	st := a.sources.Status()
	var srcs, revs []string
	for _, s := range st.Sources {
		srcs = append(srcs, s.Kind+" "+s.Location+" ("+s.State+")")
		if s.Revision != "" {
			revs = append(revs, s.Revision)
		}
	}
	b.PolicySource = strings.Join(srcs, ", ")
	b.PolicyRevision = strings.Join(revs, ", ")
	if b.PolicyRevision == "" {
		b.PolicyRevision = "none"
	}
	return b
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

func orOff(addr string) string {
	if addr == "" {
		return "off"
	}
	return addr
}

// log writes the banner as one structured line.
func (b banner) log(logger *slog.Logger) {
	ops := b.Ops
	if ops == "" {
		ops = "on the decision listener"
	}
	logger.Info("tokenguard started",
		"version", b.Version, "revision", b.Revision,
		slog.Group("store", "backend", b.Store, "data_dir", b.DataDir),
		"issuers", b.Issuers,
		slog.Group("listeners", "decide", b.Decide, "ext_authz", orOff(b.ExtAuthz), "ops", ops),
		"admin_api", onOff(b.Admin), "decision_logs", b.DecisionLogs,
		slog.Group("policy", "source", b.PolicySource, "revision", b.PolicyRevision))
}

// write prints the banner as a readable block (dev mode).
func (b banner) write(w io.Writer) {
	ops := b.Ops
	if ops == "" {
		ops = "on " + b.Decide
	}
	fmt.Fprintf(w, "\ntokenguard %s started\n", b.Version)
	fmt.Fprintf(w, "  store          %s in %s\n", b.Store, b.DataDir)
	for i, is := range b.Issuers {
		label := "issuers"
		if i > 0 {
			label = ""
		}
		fmt.Fprintf(w, "  %-14s %s\n", label, is)
	}
	fmt.Fprintf(w, "  decide         http://%s (/v1/decide, /v1/forward-auth)\n", b.Decide)
	fmt.Fprintf(w, "  ext_authz      %s\n", orOff(b.ExtAuthz))
	fmt.Fprintf(w, "  ops            %s (/metrics, /v1/status, /healthz, /readyz)\n", ops)
	fmt.Fprintf(w, "  admin API      %s\n", onOff(b.Admin))
	fmt.Fprintf(w, "  decision logs  %s\n", b.DecisionLogs)
	fmt.Fprintf(w, "  policy         %s, revision %s\n", b.PolicySource, b.PolicyRevision)
}
