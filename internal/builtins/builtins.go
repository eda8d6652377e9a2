// Package builtins declares the pdp.* Rego built-in functions, through which
// policies read the decision point's state and match requests against
// compiled policy data:
//
//	pdp.revocation(token)     whether the token is revoked, and how
//	pdp.last_seen(token_hash) where and how the token was last seen
//	pdp.route(routes, method, host, path)
//	                          the route a request is for (route.go)
//	pdp.destination(destinations, broker, operation, destination)
//	                          the destination a message is for (destination.go)
//
// The functions are registered with OPA once, from init, so that every
// compiler in the process knows them: the decision engine, bundle loading and
// the embedded OPA command line (its capabilities list includes them).
//
// The built-ins only read, through the Reader set with SetStore at start.
// Until a Reader is set, and whenever the store fails, they return an error:
// evaluated with strict built-in errors, as on the decision path, the
// decision then fails closed as a policy error. Without strict errors OPA
// turns a built-in error into an undefined expression, so a policy must
// never read an undefined pdp.revocation result as "not revoked".
package builtins

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/tokenguard/pdp/internal/store"
)

// Names of the built-ins.
const (
	RevocationName = "pdp.revocation"
	LastSeenName   = "pdp.last_seen"
)

// Reader is the part of the store the built-ins read.
type Reader interface {
	CheckRevocation(ctx context.Context, ref store.TokenRef) (store.Revocation, bool, error)
	LastSeen(ctx context.Context, tokenHash string) (store.Fingerprint, bool, error)
}

// ErrNoStore is the error of every built-in call made before SetStore.
var ErrNoStore = errors.New("no state store is configured")

type readerBox struct{ r Reader }

var current atomic.Pointer[readerBox]

// SetStore sets the store the built-ins read; nil unsets it. It is safe to
// call while policies are being evaluated: each call of a built-in uses the
// store set when it starts.
func SetStore(r Reader) {
	if r == nil {
		current.Store(nil)
		return
	}
	current.Store(&readerBox{r: r})
}

// reader returns the store set with SetStore, or ErrNoStore.
func reader() (Reader, error) {
	if b := current.Load(); b != nil {
		return b.r, nil
	}
	return nil, ErrNoStore
}

// bctxContext returns the evaluation's context.
func bctxContext(bctx rego.BuiltinContext) context.Context {
	if bctx.Context != nil {
		return bctx.Context
	}
	return context.Background()
}

func init() {
	rego.RegisterBuiltin1(revocationDecl, revocation)
	rego.RegisterBuiltin1(lastSeenDecl, lastSeen)
	rego.RegisterBuiltin4(routeDecl, routeMatch)
	rego.RegisterBuiltin4(destinationDecl, destinationMatch)
}

// Empty is a store with nothing in it: no revocation, no sighting. The
// command line (pdp opa eval, test, bench) reads it outside serve, so that
// a policy evaluates as it would against a fresh data dir.
var Empty Reader = emptyReader{}

type emptyReader struct{}

func (emptyReader) CheckRevocation(context.Context, store.TokenRef) (store.Revocation, bool, error) {
	return store.Revocation{}, false, nil
}

func (emptyReader) LastSeen(context.Context, string) (store.Fingerprint, bool, error) {
	return store.Fingerprint{}, false, nil
}
