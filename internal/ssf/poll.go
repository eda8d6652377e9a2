package ssf

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/jsonast"
)

// Limits of the poll client.
const (
	// maxPollResponse bounds a poll response body.
	maxPollResponse = 8 << 20
	// maxPollDepth bounds the nesting of a poll response.
	maxPollDepth = 4
	// maxTokenFile bounds the poll credential file.
	maxTokenFile = 16 << 10
	// finalAckTimeout bounds the acknowledgement sent when polling stops.
	finalAckTimeout = 2 * time.Second
	// maxPromptPolls bounds the polls sent at once, one after the other,
	// because the transmitter has more or acknowledgements are pending; the
	// last one then only acknowledges (maxEvents 0) and the next waits for
	// the poll interval, so that a transmitter that always has SETs is not
	// polled in a hot loop.
	maxPromptPolls = 16
)

// Run polls, until ctx is done, every transmitter that has a poll endpoint
// (RFC 8936), applying each SET received as if it had been pushed. It
// returns at once when no transmitter is polled, and nil when ctx ends.
// Call it once per Receiver.
func (r *Receiver) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, p := range r.pollers {
		wg.Go(func() { p.run(ctx) })
	}
	wg.Wait()
	return nil
}

// poller polls one transmitter.
type poller struct {
	r         *Receiver
	issuer    string
	endpoint  string
	tokenFile string
	interval  time.Duration
	maxEvents int
	client    *http.Client
	timeout   time.Duration
	log       *slog.Logger

	// What the next request acknowledges: SETs applied (ack) and refused
	// (setErrs). SETs that could not be recorded are in neither, so that
	// the transmitter delivers them again.
	ack     []string
	setErrs map[string]setError
}

// pollRequest is the body of an RFC 8936 poll.
type pollRequest struct {
	MaxEvents         int                 `json:"maxEvents"`
	ReturnImmediately bool                `json:"returnImmediately"`
	Ack               []string            `json:"ack"`
	SetErrs           map[string]setError `json:"setErrs"`
}

// setError reports a refused SET back to its transmitter.
type setError struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

func (p *poller) run(ctx context.Context) {
	p.log.InfoContext(ctx, "ssf: polling transmitter", "interval", p.interval)
	timer := time.NewTimer(0)
	defer timer.Stop()
	prompt := 0 // polls sent at once in a row
	for {
		select {
		case <-ctx.Done():
			p.finalAck(ctx)
			return
		case <-timer.C:
		}
		more, err := p.poll(ctx, p.maxEvents)
		switch {
		case ctx.Err() != nil:
			p.finalAck(ctx)
			return
		case err != nil:
			p.log.WarnContext(ctx, "ssf: poll failed", "error", err)
		}
		// SETs applied are acknowledged at once, on a poll of their own
		// (RFC 8936 §2.4: the acknowledgement rides on the next request),
		// not a poll interval later: a transmitter whose redelivery timer
		// is shorter would send them again.
		if err == nil && (more || p.pending()) {
			if prompt++; prompt < maxPromptPolls {
				timer.Reset(0)
				continue
			}
			if p.pending() {
				if _, err := p.poll(ctx, 0); err != nil && ctx.Err() == nil {
					p.log.WarnContext(ctx, "ssf: acknowledging SETs failed; they will be acknowledged with the next poll", "error", err)
				}
			}
		}
		prompt = 0
		timer.Reset(p.interval)
	}
}

// pending reports whether acknowledgements (or refusals) wait to be sent.
func (p *poller) pending() bool { return len(p.ack) > 0 || len(p.setErrs) > 0 }

// finalAck sends the acknowledgements still pending when polling stops,
// asking for no further SETs, so that they are not delivered again.
func (p *poller) finalAck(ctx context.Context) {
	if !p.pending() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalAckTimeout)
	defer cancel()
	if _, err := p.poll(ctx, 0); err != nil {
		p.log.WarnContext(ctx, "ssf: acknowledging the last SETs failed; they will be delivered again", "error", err)
	}
}

// poll sends one poll request with the pending acknowledgements, applies
// the SETs received and reports whether the transmitter has more. The
// acknowledgements are dropped only once the transmitter has answered.
func (p *poller) poll(ctx context.Context, maxEvents int) (more bool, err error) {
	defer func() {
		if ctx.Err() == nil {
			p.r.obs.SSFPolled(err == nil)
		}
	}()
	token, err := p.credential()
	if err != nil {
		return false, err
	}
	body, err := json.Marshal(pollRequest{
		MaxEvents:         maxEvents,
		ReturnImmediately: true,
		Ack:               append([]string{}, p.ack...),
		SetErrs:           p.pendingErrs(),
	})
	if err != nil {
		return false, err
	}
	rctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, p.endpoint, bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("poll_endpoint: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return false, fmt.Errorf("poll: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxPollResponse+1))
	if err != nil {
		return false, fmt.Errorf("poll: read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return false, fmt.Errorf("poll: status %d", resp.StatusCode)
	}
	if len(data) > maxPollResponse {
		return false, fmt.Errorf("poll: response larger than %d bytes", maxPollResponse)
	}
	sets, more, err := parsePollResponse(data)
	if err != nil {
		return false, err
	}
	// The transmitter has the acknowledgements now.
	p.ack, p.setErrs = p.ack[:0], nil

	jtis := make([]string, 0, len(sets))
	for jti := range sets {
		jtis = append(jtis, jti)
	}
	slices.Sort(jtis)
	for _, jti := range jtis {
		p.handle(ctx, jti, sets[jti])
	}
	// A transmitter that claims more but sends none is not polled in a
	// tight loop.
	return more && len(sets) > 0, nil
}

// handle applies one polled SET and notes how to acknowledge it.
func (p *poller) handle(ctx context.Context, jti string, raw []byte) {
	if raw == nil {
		p.refuseSET(jti, refuse(CodeInvalidRequest, "the SET must be a string"))
		return
	}
	_, err := p.r.process(ctx, raw, expect{issuer: p.issuer, jti: jti})
	if err == nil {
		p.ack = append(p.ack, jti)
		return
	}
	if e, ok := AsError(err); ok {
		p.refuseSET(jti, e)
	}
	// Otherwise it could not be recorded: neither acknowledged nor refused,
	// so that the transmitter delivers it again.
}

func (p *poller) refuseSET(jti string, e *Error) {
	if p.setErrs == nil {
		p.setErrs = make(map[string]setError)
	}
	p.setErrs[jti] = setError{Err: e.Code, Description: e.Description}
}

func (p *poller) pendingErrs() map[string]setError {
	if p.setErrs == nil {
		return map[string]setError{}
	}
	return p.setErrs
}

// credential reads the bearer credential for the poll endpoint, again for
// every poll so that it can be rotated without a restart.
func (p *poller) credential() (string, error) {
	if p.tokenFile == "" {
		return "", nil
	}
	f, err := os.Open(p.tokenFile)
	if err != nil {
		return "", fmt.Errorf("read poll_token_file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxTokenFile+1))
	if err != nil {
		return "", fmt.Errorf("read poll_token_file: %w", err)
	}
	if len(data) > maxTokenFile {
		return "", errors.New("poll_token_file is too large")
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return "", errors.New("poll_token_file is empty")
	}
	for i := 0; i < len(token); i++ {
		if token[i] <= ' ' || token[i] > '~' {
			return "", errors.New("poll_token_file holds characters a bearer credential may not have")
		}
	}
	return token, nil
}

// parsePollResponse reads {"sets": {jti: SET}, "moreAvailable": bool}. A
// member of sets whose value is not a string maps to nil.
func parsePollResponse(data []byte) (map[string][]byte, bool, error) {
	v, err := jsonast.Parse(data, maxPollDepth)
	if err != nil {
		return nil, false, fmt.Errorf("poll: response is not strict JSON: %w", err)
	}
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, false, errors.New("poll: response is not a JSON object")
	}
	var more bool
	switch m := member(obj, "moreAvailable").(type) {
	case nil:
	case ast.Boolean:
		more = bool(m)
	default:
		return nil, false, errors.New("poll: moreAvailable is not a boolean")
	}
	sets, ok := member(obj, "sets").(ast.Object)
	if !ok {
		return nil, false, errors.New("poll: response has no sets object")
	}
	// A key that is not the SET's jti (empty, too long, another one) is
	// refused with the SET, under that key.
	out := make(map[string][]byte, sets.Len())
	sets.Foreach(func(k, v *ast.Term) {
		jti := string(k.Value.(ast.String))
		if s, ok := v.Value.(ast.String); ok {
			out[jti] = []byte(s)
		} else {
			out[jti] = nil
		}
	})
	return out, more, nil
}
