package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tokenguard/pdp/internal/store"
)

// Revocations is the part of the store the admin API writes and reads.
type Revocations interface {
	PutRevocation(ctx context.Context, r store.Revocation) (store.Revocation, error)
	GetRevocation(ctx context.Context, id string) (store.Revocation, error)
	DeleteRevocation(ctx context.Context, id string) error
	ListRevocations(ctx context.Context, f store.RevocationFilter) ([]store.Revocation, error)
}

// Admin configures the admin API under /v1/admin/. Without a credential the
// admin API is not served at all.
type Admin struct {
	// Credential is the bearer credential callers must present.
	Credential string
	Store      Revocations
	// RevocationTTL is how long a revocation applies after its cut-off.
	RevocationTTL time.Duration
	Now           func() time.Time
	// Backup, when set, serves GET /v1/admin/backup.
	Backup Backuper
	// Issuers are the configured token issuers, listed at GET
	// /v1/admin/issuers so that a client (pdp revoke) can refuse a
	// revocation for an issuer no token can come from (a typo).
	Issuers []string
	// Explainer, when set, serves POST /v1/admin/explain.
	Explainer Explainer
}

// Limits of the admin API.
const (
	maxAdminBody      = 64 << 10
	defaultListLimit  = 1000
	maxListLimit      = 10000
	maxUserEventAhead = time.Minute
)

// UserEvents maps a user-state event to the revocation it causes: every
// one cuts off the subject's tokens issued before the event.
var UserEvents = map[string]bool{
	"logout": true, "disabled": true, "deleted": true, "password_changed": true,
	"role_changed": true, "credential_compromised": true,
}

type admin struct {
	cfg    Admin
	digest [32]byte
	logger *slog.Logger
}

func mountAdmin(r chi.Router, cfg Admin, logger *slog.Logger, logs DecisionLogger) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &admin{cfg: cfg, digest: sha256.Sum256([]byte(cfg.Credential)), logger: logger}
	r.Route("/v1/admin", func(r chi.Router) {
		r.Use(a.authenticate)
		r.Post("/revocations", a.createRevocation)
		r.Get("/revocations", a.listRevocations)
		r.Get("/revocations/{id}", a.getRevocation)
		r.Delete("/revocations/{id}", a.deleteRevocation)
		r.Post("/user-events", a.userEvent)
		r.Get("/issuers", a.listIssuers)
		if cfg.Backup != nil {
			r.Get("/backup", a.backup)
		}
		if cfg.Explainer != nil {
			x := &explain{explainer: cfg.Explainer, logs: logs, logger: logger}
			r.Post("/explain", x.serveHTTP)
		}
	})
}

// Backuper writes a consistent copy of the store file (store.Bolt.Backup).
type Backuper interface {
	Backup(ctx context.Context, w io.Writer, started func(size int64)) (int64, error)
}

// maxBackupTime bounds the answer of GET /v1/admin/backup, which may take
// longer than the listener's write timeout.
const maxBackupTime = 30 * time.Minute

// backupRetryAfter is the Retry-After (seconds) of a backup refused
// because another one is being taken.
const backupRetryAfter = "30"

// backup streams a consistent copy of the store file: a snapshot taken in
// one read transaction, then sent, its size announced in Content-Length so
// that a cut answer is told from a whole one. One backup at a time: a
// second one meanwhile is answered 429 with Retry-After.
func (a *admin) backup(w http.ResponseWriter, r *http.Request) {
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(maxBackupTime))
	wrote := false
	n, err := a.cfg.Backup.Backup(r.Context(), w, func(size int64) {
		wrote = true
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		w.Header().Set("Content-Disposition", `attachment; filename="pdp.db"`)
		w.WriteHeader(http.StatusOK)
	})
	if err != nil {
		if errors.Is(err, store.ErrBackupBusy) {
			w.Header().Set("Retry-After", backupRetryAfter)
			writeProblem(w, Problem{Type: TypeBackupBusy, Title: "Too Many Requests", Status: http.StatusTooManyRequests,
				Detail: "a backup is already being taken; repeat the request when it is done"})
			return
		}
		if !wrote {
			a.storeError(w, "backup", err)
			return
		}
		// The body is cut short of its Content-Length: the client sees it.
		a.logger.Error("backup", "error", err, "bytes", n)
		return
	}
	a.logger.Info("backup taken", "bytes", n)
}

// authenticate checks the bearer credential in constant time (of the
// digests, so that not even the length leaks).
func (a *admin) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
		given := sha256.Sum256([]byte(strings.TrimSpace(cred)))
		if !strings.EqualFold(scheme, "bearer") || subtle.ConstantTimeCompare(given[:], a.digest[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tokenguard-admin"`)
			writeProblem(w, Problem{Type: TypeUnauthorized, Title: "Unauthorized", Status: http.StatusUnauthorized,
				Detail: "the admin API needs its bearer credential"})
			return
		}
		next.ServeHTTP(w, r)
	})
}

// revocationRequest is the body of POST /v1/admin/revocations.
type revocationRequest struct {
	Kind      store.Kind `json:"kind"`
	Issuer    string     `json:"iss"`
	Value     string     `json:"value"`
	Reason    string     `json:"reason"`
	NotBefore *when      `json:"not_before"`
}

func (a *admin) createRevocation(w http.ResponseWriter, r *http.Request) {
	var req revocationRequest
	if p := decodeJSON(w, r, &req); p != nil {
		writeProblem(w, *p)
		return
	}
	if !req.Kind.Valid() {
		writeProblem(w, *badRequest("kind must be one of jti, subject, session, client"))
		return
	}
	now := a.cfg.Now()
	rev := store.Revocation{Kind: req.Kind, Issuer: req.Issuer, Value: req.Value, Reason: req.Reason, CreatedAt: now}
	cutoff := now
	if req.NotBefore != nil {
		rev.NotBefore = req.NotBefore.Time
		if req.NotBefore.After(cutoff) {
			cutoff = req.NotBefore.Time
		}
	}
	rev.ExpiresAt = cutoff.Add(a.cfg.RevocationTTL)
	a.put(w, r, rev)
}

// userEventRequest is the body of POST /v1/admin/user-events.
type userEventRequest struct {
	Issuer  string `json:"iss"`
	Subject string `json:"sub"`
	Event   string `json:"event"`
	At      *when  `json:"at"`
}

func (a *admin) userEvent(w http.ResponseWriter, r *http.Request) {
	var req userEventRequest
	if p := decodeJSON(w, r, &req); p != nil {
		writeProblem(w, *p)
		return
	}
	if !UserEvents[req.Event] {
		writeProblem(w, *badRequest("event must be one of logout, disabled, deleted, password_changed, role_changed, credential_compromised"))
		return
	}
	now := a.cfg.Now()
	at := now
	if req.At != nil {
		if req.At.After(now.Add(maxUserEventAhead)) {
			writeProblem(w, *badRequest("at lies in the future"))
			return
		}
		at = req.At.Time
	}
	a.put(w, r, store.Revocation{
		Kind: store.KindSubject, Issuer: req.Issuer, Value: req.Subject, Reason: "user-event:" + req.Event,
		CreatedAt: now, NotBefore: at, ExpiresAt: maxTime(at, now).Add(a.cfg.RevocationTTL),
	})
}

// put stores a revocation durably and answers 201 with the record in effect.
func (a *admin) put(w http.ResponseWriter, r *http.Request, rev store.Revocation) {
	stored, err := a.cfg.Store.PutRevocation(r.Context(), rev)
	if err != nil {
		a.storeError(w, "store revocation", err)
		return
	}
	a.logger.Info("revocation stored", "id", stored.ID, "kind", stored.Kind, "iss", stored.Issuer, "reason", stored.Reason)
	w.Header().Set("Location", "/v1/admin/revocations/"+stored.ID)
	writeJSON(w, a.logger, http.StatusCreated, stored)
}

func (a *admin) listRevocations(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f := store.RevocationFilter{Kind: store.Kind(q.Get("kind")), Issuer: q.Get("iss"), Value: q.Get("value"), Limit: defaultListLimit}
	if f.Kind != "" && !f.Kind.Valid() {
		writeProblem(w, *badRequest("kind must be one of jti, subject, session, client"))
		return
	}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 || n > maxListLimit {
			writeProblem(w, *badRequest(fmt.Sprintf("limit must be between 1 and %d", maxListLimit)))
			return
		}
		f.Limit = n
	}
	list, err := a.cfg.Store.ListRevocations(r.Context(), f)
	if err != nil {
		a.storeError(w, "list revocations", err)
		return
	}
	if list == nil {
		list = []store.Revocation{}
	}
	writeJSON(w, a.logger, http.StatusOK, map[string]any{"revocations": list})
}

// listIssuers answers the configured issuers: {"issuers": [...]}.
func (a *admin) listIssuers(w http.ResponseWriter, _ *http.Request) {
	list := a.cfg.Issuers
	if list == nil {
		list = []string{}
	}
	writeJSON(w, a.logger, http.StatusOK, map[string]any{"issuers": list})
}

func (a *admin) getRevocation(w http.ResponseWriter, r *http.Request) {
	rev, err := a.cfg.Store.GetRevocation(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		a.storeError(w, "get revocation", err)
		return
	}
	writeJSON(w, a.logger, http.StatusOK, rev)
}

func (a *admin) deleteRevocation(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	if err := a.cfg.Store.DeleteRevocation(r.Context(), id); err != nil {
		a.storeError(w, "delete revocation", err)
		return
	}
	a.logger.Info("revocation deleted", "id", id)
	w.WriteHeader(http.StatusNoContent)
}

// storeError maps store errors to problems: the caller's mistakes by their
// sentinel, anything else a 500 whose cause stays in the log.
func (a *admin) storeError(w http.ResponseWriter, doing string, err error) {
	switch {
	case errors.Is(err, store.ErrNotFound):
		writeProblem(w, Problem{Type: TypeNotFound, Title: "Not Found", Status: http.StatusNotFound, Detail: "no such revocation"})
	case errors.Is(err, store.ErrInvalid), errors.Is(err, store.ErrExists):
		writeProblem(w, *badRequest(strings.TrimPrefix(err.Error(), "store: ")))
	case errors.Is(err, store.ErrFaulted):
		a.logger.Error(doing, "error", err)
		writeProblem(w, Problem{Type: TypeStoreError, Title: "Store Unavailable", Status: http.StatusServiceUnavailable,
			Detail: "the state store cannot take writes now (see /readyz); nothing was acknowledged, repeat the request later"})
	case errors.Is(err, store.ErrUnavailable):
		a.logger.Warn(doing, "error", err)
		writeProblem(w, Problem{Type: TypeStoreError, Title: "Store Unavailable", Status: http.StatusServiceUnavailable,
			Detail: "the shared state did not answer in time; repeat the request (a repeated revocation is merged with the first)"})
	default:
		a.logger.Error(doing, "error", err)
		writeProblem(w, Problem{Type: TypeStoreError, Title: "Store Error", Status: http.StatusInternalServerError,
			Detail: "the state store failed; nothing was changed"})
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
