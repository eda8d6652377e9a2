package natsauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/tokenguard/pdp/internal/store"
)

// ConnOptions say how to reach NATS as one user.
type ConnOptions struct {
	// URL is the server (several separated by commas).
	URL string
	// User and Password, or CredentialsFile (a .creds file).
	User, Password  string
	CredentialsFile string
	// Name is the connection's name, as the server's monitoring shows it.
	Name string
}

// Dial connects to NATS. It reconnects forever once connected; the first
// connection must succeed.
func Dial(o ConnOptions) (*nats.Conn, error) {
	opts := []nats.Option{nats.Name(o.Name), nats.MaxReconnects(-1), nats.ReconnectWait(time.Second), nats.Timeout(5 * time.Second)}
	switch {
	case o.CredentialsFile != "":
		opts = append(opts, nats.UserCredentials(o.CredentialsFile))
	case o.User != "":
		opts = append(opts, nats.UserInfo(o.User, o.Password))
	}
	nc, err := nats.Connect(o.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to NATS as %s: %w", o.Name, err)
	}
	return nc, nil
}

// MaxInFlight bounds the authorization requests answered at once by one
// service; a request beyond is refused (overloaded) at once.
const MaxInFlight = 256

// requestTimeout bounds the answer to one authorization request (the
// server waits for its authorization timeout, 2s by default).
const requestTimeout = 5 * time.Second

// kickTimeout bounds one kick request; kickParallel bounds the kicks in
// flight.
const (
	kickTimeout  = time.Second
	kickParallel = 16
)

// Run answers the authorization requests that arrive on callout (a user of
// the callout account, in queue group queue) and checks the live
// connections for revocations every CheckInterval, closing revoked ones
// through system (a system-account user), until ctx ends. It drains the
// callout subscription and closes both connections before it returns.
func (s *Service) Run(ctx context.Context, callout, system *nats.Conn, queue string) error {
	defer system.Close()
	defer callout.Close()
	sem := make(chan struct{}, MaxInFlight)
	var inflight sync.WaitGroup
	sub, err := callout.QueueSubscribe(CalloutSubject, queue, func(m *nats.Msg) {
		select {
		case sem <- struct{}{}:
		default:
			s.refuseOverloaded(m)
			return
		}
		inflight.Add(1)
		go func() {
			defer func() { <-sem; inflight.Done() }()
			s.handle(ctx, m)
		}()
	})
	if err != nil {
		return fmt.Errorf("subscribe to %s: %w", CalloutSubject, err)
	}
	// Closed connections leave the tracker at once, not at their expiry.
	dsub, err := system.Subscribe(fmt.Sprintf("$SYS.ACCOUNT.%s.DISCONNECT", s.opts.Account), func(m *nats.Msg) {
		if k, ok := parseDisconnect(m.Data); ok {
			s.conns.remove(k)
		}
	})
	if err != nil {
		return fmt.Errorf("subscribe to disconnect events: %w", err)
	}
	defer dsub.Unsubscribe()
	if err := callout.Flush(); err != nil {
		return fmt.Errorf("subscribe to %s: %w", CalloutSubject, err)
	}
	s.connected.Store(true)
	defer s.connected.Store(false)
	s.logger.Info("nats auth callout serving", "subject", CalloutSubject, "queue_group", queue, "account", s.opts.Account,
		"issuer", s.issuer, "check_interval", s.opts.CheckInterval)
	tick := time.NewTicker(s.opts.CheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = sub.Drain()
			inflight.Wait()
			return nil
		case <-tick.C:
			s.connected.Store(callout.IsConnected() && system.IsConnected())
			s.check(ctx, func(ctx context.Context, k connKey) string { return kick(ctx, system, k) })
		}
	}
}

// handle answers one request.
func (s *Service) handle(ctx context.Context, m *nats.Msg) {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	resp, err := s.Authorize(ctx, m.Data, m.Header.Get(XKeyHeader))
	if err != nil {
		s.logger.Warn("nats authorization request not answered", "error", err)
		resp = nil // an empty answer: the server refuses the client
	}
	if err := m.Respond(resp); err != nil {
		s.logger.Warn("nats authorization answer not sent", "error", err)
	}
}

// refuseOverloaded answers a request that found no room.
func (s *Service) refuseOverloaded(m *nats.Msg) {
	s.counts.authorizations[resultOverloaded].Add(1)
	req, err := parseRequest(m.Data, m.Header.Get(XKeyHeader), s.opts.XKey)
	if err != nil {
		_ = m.Respond(nil)
		return
	}
	resp, err := s.respond(req, "", CodeOverloaded)
	if err != nil {
		resp = nil
	}
	_ = m.Respond(resp)
}

// check forgets the expired connections, asks the store whether each live
// connection's token, session, subject or client is revoked (one look-up
// per distinct token), and closes the revoked ones with kick, which
// reports closed, gone or error. A connection whose kick failed is tried
// again at the next check.
func (s *Service) check(ctx context.Context, kick func(context.Context, connKey) string) {
	now := s.now()
	s.conns.dropExpired(now)
	live := s.conns.snapshot()
	revoked := map[store.TokenRef]bool{}
	var doomed []connKey
	for k, c := range live {
		r, seen := revoked[c.ref]
		if !seen {
			_, found, err := s.revs.CheckRevocation(ctx, c.ref)
			if err != nil {
				s.counts.checkErrors.Add(1)
				s.logger.Warn("revocation check of a live nats connection failed; tried again at the next check", "error", err,
					"token_sha256", c.hash)
				continue
			}
			r, revoked[c.ref] = found, found
		}
		if r {
			doomed = append(doomed, k)
		}
	}
	sem := make(chan struct{}, kickParallel)
	var wg sync.WaitGroup
	for _, k := range doomed {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			kctx, cancel := context.WithTimeout(ctx, kickTimeout)
			defer cancel()
			result := kick(kctx, k)
			s.counts.kicks[result].Add(1)
			c := live[k]
			if result == kickError {
				s.logger.Warn("revoked nats connection not closed; tried again at the next check", "server_id", k.server, "cid", k.cid,
					"token_sha256", c.hash)
				return
			}
			s.conns.remove(k)
			s.logger.Info("revoked nats connection closed", "server_id", k.server, "cid", k.cid, "token_sha256", c.hash,
				"iss", c.ref.Issuer, "sub", c.ref.Subject, "result", result)
		}()
	}
	wg.Wait()
	s.lastCheck.Store(now.UnixNano())
}

// kickResponse is the part of a server's answer to a kick request read.
type kickResponse struct {
	Error *struct {
		Code        int    `json:"code"`
		Description string `json:"description"`
	} `json:"error"`
}

// maxEventBytes bounds a kick answer or a disconnect event read.
const maxEventBytes = 64 << 10

// kick asks the server k names, through the system account, to close the
// client k names.
func kick(ctx context.Context, system *nats.Conn, k connKey) string {
	subject := fmt.Sprintf("$SYS.REQ.SERVER.%s.KICK", k.server)
	m, err := system.RequestWithContext(ctx, subject, fmt.Appendf(nil, `{"cid":%d}`, k.cid))
	if errors.Is(err, nats.ErrNoResponders) {
		return kickGone // the server is gone, its clients with it
	}
	if err != nil || len(m.Data) > maxEventBytes {
		return kickError
	}
	var resp kickResponse
	if err := json.Unmarshal(m.Data, &resp); err != nil {
		return kickError
	}
	switch {
	case resp.Error == nil:
		return kickClosed
	case strings.Contains(resp.Error.Description, "no such client"):
		return kickGone
	default:
		return kickError
	}
}

// parseDisconnect reads the server and client id of a disconnect event
// ($SYS.ACCOUNT.<account>.DISCONNECT).
func parseDisconnect(data []byte) (connKey, bool) {
	if len(data) > maxEventBytes {
		return connKey{}, false
	}
	var ev struct {
		Server struct {
			ID string `json:"id"`
		} `json:"server"`
		Client struct {
			ID uint64 `json:"id"`
		} `json:"client"`
	}
	if err := json.Unmarshal(data, &ev); err != nil || ev.Server.ID == "" {
		return connKey{}, false
	}
	return connKey{server: ev.Server.ID, cid: ev.Client.ID}, true
}
