package policy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/lowpriority"
)

// Source kinds.
const (
	KindDir    = "dir"
	KindBundle = "bundle"
)

// DefaultFetchTimeout bounds one download from a bundle service.
const DefaultFetchTimeout = 20 * time.Second

// decisionRef is the rule every policy must define.
var decisionRef = ast.MustParseRef(Query)

// Sources keeps the engine's policy in step with its sources: policy.dir,
// watched, or policy.bundles, local (watched) or from a bundle service
// (polled with ETags). A new version is read, verified, combined, compiled
// and (with test_on_load) tested before it replaces the active one; when any
// step fails the active policy keeps serving, and the failure shows in
// Status, in the log and through the Observer.
type Sources struct {
	engine     *Engine
	logger     *slog.Logger
	observer   Observer
	client     *http.Client
	timeout    time.Duration
	verify     *bundle.VerificationConfig
	testOnLoad bool
	shadow     bool
	debounce   time.Duration
	limits     Limits
	sources    []*source

	// activating serialises the activation of new versions, and guards
	// the sources' latest and active bundles.
	activating sync.Mutex
	// mu guards the sources' status and etag.
	mu sync.Mutex
	// refused: a version was refused since refresh last looked (after it
	// had been read, at least in part).
	refused atomic.Bool
}

// source is one policy source and what it last delivered.
type source struct {
	status     SourceStatus
	dir        string        // policy.dir
	parsed     parseCache    // the dir's modules as last loaded
	bundle     config.Bundle // policy.bundles[i]
	etag       string        // of the last bundle taken from the service
	etagActive bool          // whether the etag's bundle was accepted
	lastErr    error         // of the last failure
	accepted   string        // the state its last accepted content put it in
	latest     *bundle.Bundle
	active     *bundle.Bundle
}

// SourcesOptions are the optional parts of NewSources.
type SourcesOptions struct {
	// Logger receives activations and refusals.
	Logger *slog.Logger
	// Observer, when set, hears about activations and refusals (metrics).
	Observer Observer
	// Client downloads from bundle services; by default a client that
	// follows redirects but never from https to http. FetchTimeout bounds
	// each download either way.
	Client *http.Client
	// FetchTimeout bounds one download; default DefaultFetchTimeout.
	FetchTimeout time.Duration
	// Shadow says that the sources are a shadow policy's (policy.shadow):
	// their refusals are logged as such, since no answer depends on them.
	Shadow bool
}

// NewSources prepares the sources of cfg (policy.dir or policy.bundles)
// for engine. It reads the verification key; nothing else is read before
// Load. A configuration that cannot work is an error.
func NewSources(engine *Engine, cfg config.Policy, opts SourcesOptions) (*Sources, error) {
	vc, err := verificationConfig(cfg.Verification)
	if err != nil {
		return nil, err
	}
	if vc != nil && cfg.Dir != "" {
		return nil, errors.New("policy.verification: only bundles carry signatures; serve a signed bundle instead of policy.dir")
	}
	s := &Sources{
		engine:     engine,
		logger:     opts.Logger,
		observer:   opts.Observer,
		client:     opts.Client,
		timeout:    opts.FetchTimeout,
		verify:     vc,
		testOnLoad: cfg.TestOnLoad,
		shadow:     opts.Shadow,
		debounce:   cfg.Debounce,
		limits:     Limits{MaxFileBytes: cfg.MaxFileBytes, MaxTotalBytes: cfg.MaxTotalBytes}.orDefault(),
	}
	if s.logger == nil {
		s.logger = slog.New(slog.DiscardHandler)
	}
	if s.client == nil {
		s.client = &http.Client{CheckRedirect: noDowngrade}
	}
	if s.timeout <= 0 {
		s.timeout = DefaultFetchTimeout
	}
	if s.debounce <= 0 {
		s.debounce = 200 * time.Millisecond
	}
	switch {
	case cfg.Dir != "" && len(cfg.Bundles) > 0:
		return nil, errors.New("policy: dir and bundles are exclusive")
	case cfg.Dir != "":
		s.sources = append(s.sources, &source{dir: cfg.Dir, status: SourceStatus{Name: KindDir, Kind: KindDir, Location: cfg.Dir, State: StateLoading}})
	case len(cfg.Bundles) == 0:
		return nil, errors.New("policy: needs dir or bundles")
	}
	for i, b := range cfg.Bundles {
		if b.Name == "" || (b.Path == "") == (b.URL == "") {
			return nil, fmt.Errorf("policy.bundles[%d]: needs a name and one of path or url", i)
		}
		if b.URL != "" && b.PollMin <= 0 {
			b.PollMin = 10 * time.Second
		}
		b.PollMax = max(b.PollMax, b.PollMin)
		location := b.Path
		if b.URL != "" {
			location = redact(b.URL)
		}
		s.sources = append(s.sources, &source{bundle: b, status: SourceStatus{Name: b.Name, Kind: KindBundle, Location: location, State: StateLoading}})
	}
	return s, nil
}

// noDowngrade follows up to 10 redirects, none from https to http.
func noDowngrade(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if via[0].URL.Scheme == "https" && req.URL.Scheme != "https" {
		return fmt.Errorf("refused a redirect from https to %s", req.URL.Scheme)
	}
	return nil
}

// redact drops credentials and the query from a URL shown in status.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	u.User, u.RawQuery, u.Fragment = nil, "", ""
	return u.String()
}

// Load reads every source once and activates the policy they make, at
// full priority: it runs before decisions are served. It
// returns an error, naming the failures, when no policy is active
// afterwards: decisions then deny with policy_error until a source delivers.
// The error wraps each source's (a *ConfigErrorsError for data with
// configuration errors).
func (s *Sources) Load(ctx context.Context) error {
	for _, src := range s.sources {
		s.refresh(ctx, src)
	}
	if s.engine.Ready() == nil {
		return nil
	}
	var errs []error
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, src := range s.sources {
		switch st := src.status; st.State {
		case StateFailed:
			errs = append(errs, fmt.Errorf("%s: %w", st.Name, src.lastErr))
		case StateWaiting, StateLoading:
			errs = append(errs, fmt.Errorf("%s: %s", st.Name, st.State))
		}
	}
	return fmt.Errorf("%w: %w", ErrNoPolicy, errors.Join(errs...))
}

// Run watches the local sources and polls the remote ones until ctx ends.
// Call it after Load.
func (s *Sources) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, src := range s.sources {
		if src.bundle.URL != "" {
			wg.Go(func() { s.poll(ctx, src) })
			continue
		}
		path := src.dir
		if path == "" {
			path = src.bundle.Path
		}
		wg.Go(func() {
			watchPath(ctx, path, s.debounce, func() { s.refreshBehind(ctx, src) }, func(err error) { s.failed(src, err) })
		})
	}
	wg.Wait()
	return nil
}

// poll asks the bundle service for a new version, at a random pause
// between poll_min and poll_max.
func (s *Sources) poll(ctx context.Context, src *source) {
	for {
		pause := src.bundle.PollMin
		if spread := src.bundle.PollMax - src.bundle.PollMin; spread > 0 {
			pause += rand.N(spread)
		}
		t := time.NewTimer(pause)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		s.refreshBehind(ctx, src)
	}
}

// Status reports the active policy and the state of every source.
func (s *Sources) Status() Status {
	var st Status
	if info, ok := s.engine.Active(); ok {
		st.Active = &info
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, src := range s.sources {
		st.Sources = append(st.Sources, src.status)
	}
	return st
}

// refresh reads src and, when it has something new, tries to activate it;
// then it hands the memory of what was refused or replaced back to the
// operating system.
func (s *Sources) refresh(ctx context.Context, src *source) {
	s.update(ctx, src)
	releaseMemory(s.refused.Swap(false), s.engine.retired.Swap(0))
}

// refreshBehind is refresh while decisions are served: background work
// for them, at low priority (see lowpriority).
func (s *Sources) refreshBehind(ctx context.Context, src *source) {
	lowpriority.Run(func() { s.refresh(ctx, src) })
}

// update is refresh but for the memory.
func (s *Sources) update(ctx context.Context, src *source) {
	switch {
	case src.dir != "":
		set, err := loadDir(src.dir, s.limits, &src.parsed)
		if err != nil {
			s.failed(src, err)
			return
		}
		s.activating.Lock()
		defer s.activating.Unlock()
		s.offer(ctx, src, set, set.Revision)
	case src.bundle.URL != "":
		s.mu.Lock()
		etag := src.etag
		if !src.etagActive {
			etag = "" // what was refused is asked for again
		}
		s.mu.Unlock()
		credential, err := readCredential(src.bundle.CredentialsFile)
		if err != nil {
			s.failed(src, fmt.Errorf("bundle %s: credentials_file: %w", src.bundle.Name, err))
			return
		}
		fctx, cancel := context.WithTimeout(ctx, s.timeout)
		b, newEtag, err := fetchBundle(fctx, s.client, src.bundle.Name, src.bundle.URL, etag, credential, s.verify, s.limits)
		cancel()
		switch {
		case errors.Is(err, errNotModified):
			s.checked(src)
			return
		case err != nil:
			s.failed(src, err)
			return
		}
		s.mu.Lock()
		src.etag, src.etagActive = newEtag, false
		s.mu.Unlock()
		s.offerBundle(ctx, src, b)
	default:
		b, err := readLocalBundle(src.bundle.Name, src.bundle.Path, s.verify, s.limits)
		if err != nil {
			s.failed(src, err)
			return
		}
		s.offerBundle(ctx, src, b)
	}
}

// offerBundle combines b with what the other bundles last delivered and
// tries to activate the result. Until every bundle has delivered once,
// nothing is activated: a partial policy never serves.
func (s *Sources) offerBundle(ctx context.Context, src *source, b *bundle.Bundle) {
	s.activating.Lock()
	defer s.activating.Unlock()
	var (
		names   []string
		parts   []*bundle.Bundle
		waiting []string
	)
	for _, o := range s.sources {
		part := o.active
		switch {
		case o == src:
			part = b
		case part == nil:
			part = o.latest
		}
		if part == nil {
			waiting = append(waiting, o.bundle.Name)
			continue
		}
		names, parts = append(names, o.bundle.Name), append(parts, part)
	}
	if len(waiting) > 0 {
		src.latest = b
		s.succeeded(src, b.Manifest.Revision, StateWaiting)
		s.logger.Info("policy bundle loaded; waiting for the other bundles before the first activation",
			"source", src.bundle.Name, "waiting_for", strings.Join(waiting, ","))
		return
	}
	set, err := combine(names, parts)
	if err != nil {
		s.failed(src, err)
		return
	}
	if !s.offer(ctx, src, set, b.Manifest.Revision) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, o := range s.sources {
		o.active, o.latest = parts[i], nil
		if o.status.State == StateWaiting {
			o.status.State = StateActive
		}
		o.accepted = StateActive
	}
}

// offer activates set unless it is what already serves. The caller holds
// s.activating. It reports whether set is now active.
func (s *Sources) offer(ctx context.Context, src *source, set *Set, revision string) bool {
	if info, ok := s.engine.Active(); ok && info.Revision == set.Revision {
		s.succeeded(src, revision, StateActive)
		return true
	}
	check := func(ctx context.Context, set *Set) error {
		if !definesDecision(set.Modules) {
			return fmt.Errorf("policy from %s: no module defines %s", set.Source, Query)
		}
		if s.testOnLoad {
			return runTests(ctx, set)
		}
		return nil
	}
	if err := s.engine.activate(ctx, set, check); err != nil {
		s.failed(src, err)
		return false
	}
	s.succeeded(src, revision, StateActive)
	if s.observer != nil {
		s.observer.Activated(src.status.Name, set.Revision)
	}
	return true
}

// definesDecision reports whether a module defines the decision rule.
func definesDecision(modules []*ast.Module) bool {
	for _, m := range modules {
		for _, r := range m.Rules {
			if m.Package.Path.Extend(r.Head.Ref()).Equal(decisionRef) {
				return true
			}
		}
	}
	return false
}

// succeeded records that src delivered content that was accepted.
func (s *Sources) succeeded(src *source, revision, state string) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	src.status.State, src.accepted = state, state
	src.status.Revision = revision
	src.status.ConfigErrors = nil
	src.status.LastSuccess, src.status.LastChecked = &now, &now
	src.etagActive = true
}

// checked records that src was polled and still has the content it last
// delivered, which was accepted: a failure to poll in between is over.
func (s *Sources) checked(src *source) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	src.status.LastChecked = &now
	if src.accepted != "" {
		src.status.State = src.accepted
	}
}

// failed records, logs and reports a refusal; the active policy stays.
func (s *Sources) failed(src *source, err error) {
	now := time.Now()
	s.mu.Lock()
	src.status.State = StateFailed
	src.status.LastError, src.status.LastErrorAt = err.Error(), &now
	src.lastErr = err
	src.status.ConfigErrors = nil
	if errors.Is(err, ErrRefused) && !errors.Is(err, ErrTooLarge) {
		s.refused.Store(true)
	}
	attrs := []any{"source", src.status.Name, "error", err}
	var invalid *ConfigErrorsError
	if errors.As(err, &invalid) {
		src.status.ConfigErrors = invalid.Errors
		attrs = append(attrs, "config_errors", invalid.Errors)
	}
	name := src.status.Name
	s.mu.Unlock()
	info, ok := s.engine.Active()
	switch {
	case s.shadow && ok:
		s.logger.Error("shadow policy source refused: the last good shadow version keeps being evaluated; no answer is affected", append(attrs, "shadow_revision", info.Revision)...)
	case s.shadow:
		s.logger.Error("shadow policy source refused: no shadow version is active, sampled decisions count as shadow errors; no answer is affected", attrs...)
	case ok:
		s.logger.Error("policy source refused: the active policy keeps serving", append(attrs, "active_revision", info.Revision)...)
	default:
		s.logger.Error("policy source refused: no policy is active, every decision is a deny with policy_error", attrs...)
	}
	if s.observer != nil {
		s.observer.Failed(name, err)
	}
}

// readCredential reads a bearer credential file; "" when path is empty.
func readCredential(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	c := strings.TrimSpace(string(b))
	if c == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return c, nil
}
