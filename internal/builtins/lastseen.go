package builtins

import (
	"encoding/json"
	"fmt"
	"strconv"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/tokenguard/pdp/internal/store"
)

// lastSeenDecl declares pdp.last_seen. It is memoized, so that a policy sees
// one fingerprint per token within an evaluation.
var lastSeenDecl = &rego.Function{
	Name: LastSeenName,
	Description: "Returns where and how a token was last seen, by the SHA-256 hash the decision point " +
		"keys tokens by; undefined when it has not been seen.",
	Decl: types.NewFunction(
		types.Args(types.Named("token_hash", types.S).Description("the token's SHA-256 hash, as in input.token.hash")),
		types.Named("fingerprint", types.NewObject([]*types.StaticProperty{
			types.NewStaticProperty("first_seen", types.N),
			types.NewStaticProperty("last_seen", types.N),
			types.NewStaticProperty("ip", types.S),
			types.NewStaticProperty("prefix", types.S),
			types.NewStaticProperty("ua_hash", types.S),
			types.NewStaticProperty("count", types.N),
		}, nil)).Description("first_seen and last_seen in ns since the epoch; ip and prefix (CIDR) of the latest "+
			"client, \"\" when unknown; ua_hash, the hex SHA-256 of its User-Agent (as crypto.sha256); count of sightings"),
	),
	Memoize:          true,
	Nondeterministic: true,
}

func lastSeen(bctx rego.BuiltinContext, hash *ast.Term) (*ast.Term, error) {
	h, ok := hash.Value.(ast.String)
	if !ok {
		return nil, fmt.Errorf("token_hash must be a string, got %s", ast.ValueName(hash.Value))
	}
	if h == "" || len(h) > store.MaxKeyLen {
		return nil, fmt.Errorf("token_hash must be 1 to %d bytes long", store.MaxKeyLen)
	}
	s, err := reader()
	if err != nil {
		return nil, err
	}
	ctx := bctxContext(bctx)
	d := tracked(ctx)
	var c *seenCall
	var st *stamp
	if d != nil {
		c = &seenCall{hash: string(h)}
		st = versionOf(c, s) // before the look-up
	}
	fp, found, err := s.LastSeen(ctx, string(h))
	if err != nil {
		return nil, fmt.Errorf("fingerprint lookup: %w", err)
	}
	if d != nil {
		c.seen = seenOf(fp, found)
		if st != nil && found {
			st.until = fp.ExpiresAt.UnixNano()
		}
		d.add(c, st)
	}
	if !found {
		return nil, nil // undefined
	}
	return ast.ObjectTerm(
		ast.Item(ast.InternedTerm("first_seen"), nanosTerm(fp.FirstSeen)),
		ast.Item(ast.InternedTerm("last_seen"), nanosTerm(fp.LastSeen)),
		ast.Item(ast.InternedTerm("ip"), ast.StringTerm(fp.IP)),
		ast.Item(ast.InternedTerm("prefix"), ast.StringTerm(fp.Prefix)),
		ast.Item(ast.InternedTerm("ua_hash"), ast.StringTerm(fp.UAHash)),
		ast.Item(ast.InternedTerm("count"), ast.NumberTerm(json.Number(strconv.FormatUint(fp.Count, 10)))),
	), nil
}
