// Package store keeps the decision point's state: token revocations, last-seen
// fingerprints of tokens, the DPoP proof replay cache and refresh-token
// families.
//
// Store is the interface the rest of the PDP is written against. It is shaped
// around operations, not around a storage layout. Bolt, one bbolt file at
// <data_dir>/pdp.db written with fsync'ed transactions, is the embedded
// default. Shared serves deployments with several replicas: the state that
// must count everywhere lives in Redis, and each replica's Bolt is its local
// view of the revocations, which decisions read.
//
// Every record carries an expiry. Reads ignore expired records, and Sweep
// removes them; the two together keep the state bounded.
//
// The store knows nothing about OPA or HTTP: the Rego built-ins and the admin
// API read and write it through the interfaces declared here.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Sentinel errors, checked with errors.Is. The errors a Store returns wrap
// them with what was being done and why.
var (
	// ErrNotFound means the record does not exist or has expired.
	ErrNotFound = errors.New("store: not found")
	// ErrInvalid means an argument failed validation; the wrapping error
	// names the field and the rule.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrExists means a record with the same identity exists and may not be
	// overwritten (a revocation id used for another revocation, a refresh
	// family id or refresh-token hash already taken).
	ErrExists = errors.New("store: already exists")
	// ErrLocked means the data dir is held by another process; the wrapping
	// error names the data dir.
	ErrLocked = errors.New("store: data dir is in use by another pdp process")
	// ErrRefreshReuse means a refresh token that had already been rotated out
	// was presented again. The family has been revoked as a consequence.
	ErrRefreshReuse = errors.New("store: refresh token reused")
	// ErrFamilyRevoked means the refresh-token family was revoked earlier.
	ErrFamilyRevoked = errors.New("store: refresh-token family revoked")
)

// Store is the state of one decision point. Implementations are safe for
// concurrent use.
type Store interface {
	Revocations
	Fingerprints
	ReplayCache
	Families

	// Sweep removes the records that expired at or before now, in bounded
	// transactions, and reports how many it removed. It returns early, with
	// what it has removed so far, when ctx is done.
	Sweep(ctx context.Context, now time.Time) (int, error)
	// Stats counts the records held. Counts include records that have
	// expired but have not been swept yet.
	Stats(ctx context.Context) (Stats, error)
	// Close releases the store. Calls after Close fail.
	Close() error
}

// Revocations holds revoked tokens, subjects, sessions and clients.
type Revocations interface {
	// PutRevocation stores r and returns the revocation now in effect for
	// r's kind, issuer and value. Empty ID, CreatedAt and NotBefore are
	// filled in (a random id, now, CreatedAt). See Revocation for the rule
	// that decides between r and an earlier revocation of the same target.
	PutRevocation(ctx context.Context, r Revocation) (Revocation, error)
	// PutRevocations stores up to MaxImport revocations atomically, in
	// one durable write: all or none.
	PutRevocations(ctx context.Context, rs []Revocation) ([]Revocation, error)
	// GetRevocation returns the revocation with this id, or ErrNotFound.
	GetRevocation(ctx context.Context, id string) (Revocation, error)
	// DeleteRevocation removes the revocation with this id, or returns
	// ErrNotFound.
	DeleteRevocation(ctx context.Context, id string) error
	// ListRevocations returns the unexpired revocations that match f, ordered
	// by kind (jti, session, subject, client), then issuer, then value.
	ListRevocations(ctx context.Context, f RevocationFilter) ([]Revocation, error)
	// CheckRevocation reports the first revocation that applies to the token,
	// looking at jti, session, subject and client in that order: one read
	// transaction, at most four point lookups. It is called on every
	// decision.
	CheckRevocation(ctx context.Context, ref TokenRef) (Revocation, bool, error)
}

// Fingerprints holds where and how each token was last seen.
type Fingerprints interface {
	// RecordFingerprint folds one sighting of a token into its fingerprint.
	// Concurrent calls may be coalesced into one durable write.
	RecordFingerprint(ctx context.Context, tokenHash string, s Sighting) error
	// NoteSighting makes a sighting visible to every later LastSeen of this
	// process at once, until release is called; the caller records it
	// (RecordFingerprint) and then releases it, whether the write
	// succeeded or not. A write that is answered later than the decision
	// that made it is thus never missed by the next decision.
	NoteSighting(tokenHash string, s Sighting) (release func(), err error)
	// LastSeen returns the fingerprint of a token; false when there is none
	// or it has expired.
	LastSeen(ctx context.Context, tokenHash string) (Fingerprint, bool, error)
}

// ReplayCache remembers DPoP proofs that have been used and security event
// tokens that have been applied.
type ReplayCache interface {
	// SpendDPoPJTI marks key (a hash identifying one DPoP proof) as used
	// until exp, atomically: it returns true the first time a key is spent
	// and false, without error, for every later attempt before exp. Keys are
	// at most MaxKeyLen bytes; exp must lie in the future.
	SpendDPoPJTI(ctx context.Context, key string, exp time.Time) (fresh bool, err error)
	// SETSeen reports whether the security event token with key (a hash
	// of its issuer and jti) was applied before and is still remembered.
	SETSeen(ctx context.Context, key string) (bool, error)
	// RememberSET records, durably and before it returns, that the SET with
	// key was applied, until exp (clamped with ClampExpiry). It is called
	// after the SET's revocations are stored, so that a SET whose
	// revocations failed is applied again when it is delivered again.
	RememberSET(ctx context.Context, key string, exp time.Time) error
}

// Families holds refresh-token families: the chain of refresh tokens issued
// one after another from a single grant, of which only the newest may be used.
type Families interface {
	// CreateFamily records a new family whose current refresh token is
	// f.Current. It returns ErrExists when the family id or the token hash is
	// already taken.
	CreateFamily(ctx context.Context, f Family) (Family, error)
	// FindFamily returns the family a refresh-token hash belongs to, current
	// or rotated out (compare it with Family.Current), or ErrNotFound.
	FindFamily(ctx context.Context, tokenHash string) (Family, error)
	// RotateFamily replaces the family's current token hash oldHash by
	// newHash. When oldHash is a hash the family rotated out earlier, the
	// token has been reused: the family is revoked and the revoked family is
	// returned with ErrRefreshReuse. A revoked family returns
	// ErrFamilyRevoked; an unknown family or a hash that is not the family's
	// returns ErrNotFound.
	RotateFamily(ctx context.Context, familyID, oldHash, newHash string) (Family, error)
	// UseRefreshToken records the presentation of a refresh token of family
	// f, creating the family on its first token: a hash presented before is
	// reuse (ErrRefreshReuse, the family is revoked), a revoked family is
	// ErrFamilyRevoked. Both return the family with the error.
	UseRefreshToken(ctx context.Context, f Family, hash string) (Family, error)
	// UseRefreshTokenFrom is UseRefreshToken with a reuse grace: the
	// current hash presented again within p.Grace from p.From, where it
	// was first presented from, is let through once (the family is
	// returned with Retried set, and no error); later, again or from
	// elsewhere it is reuse.
	UseRefreshTokenFrom(ctx context.Context, f Family, hash string, p Presentation) (Family, error)
}

// Stats are the sizes of the store, for status pages and metrics.
type Stats struct {
	// Revocations counts revocations per kind.
	Revocations map[Kind]int `json:"revocations"`
	// Fingerprints counts last-seen fingerprints.
	Fingerprints int `json:"fingerprints"`
	// DPoPJTIs counts spent DPoP proofs still remembered.
	DPoPJTIs int `json:"dpop_jtis"`
	// SETJTIs counts applied security event tokens still remembered.
	SETJTIs int `json:"set_jtis"`
	// Families counts refresh-token families.
	Families int `json:"families"`
	// FamilyTokens counts refresh-token hashes, current and rotated out.
	FamilyTokens int `json:"family_tokens"`
	// PendingSightings counts the tokens with sightings noted by this
	// process and not yet written (see NoteSighting).
	PendingSightings int `json:"pending_sightings"`
	// SizeBytes is the size of the backing file, when there is one.
	SizeBytes int64 `json:"size_bytes,omitempty"`
}

// Limits on what is stored.
const (
	// MaxKeyLen bounds token hashes, DPoP replay keys, and revocation and
	// family ids.
	MaxKeyLen = 128
	// MaxFieldLen bounds issuers, subjects, revoked values and reasons.
	MaxFieldLen = 1024
)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
