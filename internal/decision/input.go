package decision

import (
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/token"
)

// hiddenHeaders never reach the policy input (nor, through it, a decision
// log): they carry credentials. The token and proof enter the input only as
// verified claims and hashes.
var hiddenHeaders = map[string]bool{
	"authorization":       true,
	"proxy-authorization": true,
	"dpop":                true,
	"cookie":              true,
}

// Input keys, allocated once.
var (
	kNow, kEnvironment, kContext   = ast.StringTerm("now"), ast.StringTerm("environment"), ast.StringTerm("context")
	kRequest, kToken, kDPoP        = ast.StringTerm("request"), ast.StringTerm("token"), ast.StringTerm("dpop")
	kMethod, kURL, kScheme, kHost  = ast.StringTerm("method"), ast.StringTerm("url"), ast.StringTerm("scheme"), ast.StringTerm("host")
	kPort, kPath, kQuery, kHeaders = ast.StringTerm("port"), ast.StringTerm("path"), ast.StringTerm("query"), ast.StringTerm("headers")
	kRemoteIP, kClientCert, kX5T   = ast.StringTerm("remote_ip"), ast.StringTerm("client_cert"), ast.StringTerm("x5t#S256")
	kPresent, kValid, kError       = ast.StringTerm("present"), ast.StringTerm("valid"), ast.StringTerm("error")
	kCode, kMessage, kSource       = ast.StringTerm("code"), ast.StringTerm("message"), ast.StringTerm("source")
	kHash, kIssuer, kClaims        = ast.StringTerm("hash"), ast.StringTerm("issuer"), ast.StringTerm("claims")
	kBound, kJKT, kNonce           = ast.StringTerm("bound"), ast.StringTerm("jkt"), ast.StringTerm("nonce")
	kTokenEndpoint, kGrantType     = ast.StringTerm("token_endpoint"), ast.StringTerm("grant_type")
	kRefresh, kReused, kSubject    = ast.StringTerm("refresh"), ast.StringTerm("reused"), ast.StringTerm("subject")
	kSessionID, kClientID, kFamily = ast.StringTerm("session_id"), ast.StringTerm("client_id"), ast.StringTerm("family")
	kID, kCreated, kRotations      = ast.StringTerm("id"), ast.StringTerm("created"), ast.StringTerm("rotations")
	kMessageKey, kBroker           = ast.StringTerm("message"), ast.StringTerm("broker")
	kOperation, kDestination       = ast.StringTerm("operation"), ast.StringTerm("destination")
	kVHost                         = ast.StringTerm("vhost")
	tTrue, tFalse                  = ast.BooleanTerm(true), ast.BooleanTerm(false)
	tEmptyObject                   = ast.ObjectTerm()
	tBoundNone                     = ast.ObjectTerm(ast.Item(ast.StringTerm("method"), ast.StringTerm("none")))
)

// buildInput builds the policy input document directly as an ast.Value; its
// shape is the contract with policy authors, documented in docs/policies.md ("The input document").
func buildInput(req *Request, cred credential, tok *token.Token, tokErr *token.Error, proof proofResult, te *tokenEndpointResult, env ast.Value, now time.Time) ast.Value {
	ctx := tEmptyObject
	if req.Context != nil {
		ctx = ast.NewTerm(req.Context)
	}
	obj := ast.NewObject(
		ast.Item(kNow, intTerm(now.UnixNano())),
		ast.Item(kEnvironment, ast.NewTerm(env)),
		ast.Item(kContext, ctx),
		ast.Item(kToken, tokenTerm(cred, tok, tokErr)),
		ast.Item(kDPoP, dpopTerm(proof)),
	)
	if req.Message != nil {
		obj.Insert(kMessageKey, messageTerm(req))
	} else {
		obj.Insert(kRequest, requestTerm(req))
	}
	if te != nil {
		obj.Insert(kTokenEndpoint, tokenEndpointTerm(te))
	}
	return obj
}

// messageTerm is input.message: {broker, operation, destination, vhost,
// remote_ip (absent without one)}; destination and vhost are "" when the
// operation has none.
func messageTerm(req *Request) *ast.Term {
	m := req.Message
	obj := ast.NewObject(
		ast.Item(kBroker, ast.StringTerm(m.Broker)),
		ast.Item(kOperation, ast.StringTerm(m.Operation)),
		ast.Item(kDestination, ast.StringTerm(m.Destination)),
		ast.Item(kVHost, ast.StringTerm(m.VHost)),
	)
	if req.RemoteIP.IsValid() {
		obj.Insert(kRemoteIP, ast.StringTerm(req.RemoteIP.String()))
	}
	return ast.NewTerm(obj)
}

func requestTerm(req *Request) *ast.Term {
	u := req.URL
	port := u.Port()
	if port == "" {
		port = "443"
		if u.Scheme == "http" {
			port = "80"
		}
	}
	p, _ := strconv.Atoi(port)
	obj := ast.NewObject(
		ast.Item(kMethod, ast.StringTerm(req.Method)),
		ast.Item(kURL, ast.StringTerm(u.String())),
		ast.Item(kScheme, ast.StringTerm(u.Scheme)),
		ast.Item(kHost, ast.StringTerm(u.Hostname())),
		ast.Item(kPort, intTerm(int64(p))),
		ast.Item(kPath, ast.StringTerm(u.Path)),
		ast.Item(kQuery, queryTerm(u)),
		ast.Item(kHeaders, headersTerm(req.Headers)),
	)
	if req.RemoteIP.IsValid() {
		obj.Insert(kRemoteIP, ast.StringTerm(req.RemoteIP.String()))
	}
	if req.ClientCertSHA256 != "" {
		obj.Insert(kClientCert, ast.ObjectTerm(ast.Item(kX5T, ast.StringTerm(req.ClientCertSHA256))))
	}
	return ast.NewTerm(obj)
}

func queryTerm(u *url.URL) *ast.Term {
	if u.RawQuery == "" {
		return tEmptyObject
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		addDroppedPairs(q, u.RawQuery)
	}
	return stringsMapTerm(q, nil)
}

// addDroppedPairs adds to q the pairs of rawQuery that url.ParseQuery
// drops (one holding a ";", which servers that split on it read as two
// pairs, or a bad percent-encoding), split on "&" and ";" and decoded as
// far as they decode: the query object names every parameter the URL
// carries, so that a policy sees it and the decision-log mask, which erases
// the URL when a parameter is named like a credential, finds it.
func addDroppedPairs(q url.Values, rawQuery string) {
	for pair := range strings.SplitSeq(rawQuery, "&") {
		if pair == "" {
			continue
		}
		if !strings.Contains(pair, ";") {
			k, v, _ := strings.Cut(pair, "=")
			_, kerr := url.QueryUnescape(k)
			_, verr := url.QueryUnescape(v)
			if kerr == nil && verr == nil {
				continue // ParseQuery kept it
			}
		}
		for part := range strings.SplitSeq(pair, ";") {
			if part == "" {
				continue
			}
			k, v, _ := strings.Cut(part, "=")
			k, v = lenientUnescape(k), lenientUnescape(v)
			q[k] = append(q[k], v)
		}
	}
}

// lenientUnescape is s query-unescaped, or s as it is when it does not
// unescape.
func lenientUnescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

func headersTerm(h map[string][]string) *ast.Term {
	return stringsMapTerm(h, hiddenHeaders)
}

func stringsMapTerm(m map[string][]string, skip map[string]bool) *ast.Term {
	obj := ast.NewObjectWithCapacity(len(m))
	for k, vs := range m {
		if skip[k] {
			continue
		}
		arr := make([]*ast.Term, len(vs))
		for i, v := range vs {
			arr[i] = ast.StringTerm(v)
		}
		obj.Insert(ast.StringTerm(k), ast.ArrayTerm(arr...))
	}
	return ast.NewTerm(obj)
}

func tokenTerm(cred credential, tok *token.Token, tokErr *token.Error) *ast.Term {
	obj := ast.NewObject(ast.Item(kPresent, ast.BooleanTerm(cred.raw != "" || cred.verified || (cred.err != nil && cred.err.Code != CodeRequestInvalid))))
	if cred.scheme != "" {
		obj.Insert(kScheme, ast.StringTerm(cred.scheme))
	}
	if tok == nil {
		obj.Insert(kValid, tFalse)
		obj.Insert(kClaims, tEmptyObject)
		obj.Insert(kBound, tBoundNone)
		if tokErr != nil {
			obj.Insert(kError, errorTerm(tokErr.Code, tokErr.Message))
		}
		return ast.NewTerm(obj)
	}
	obj.Insert(kValid, tTrue)
	obj.Insert(kSource, ast.StringTerm(tok.Source))
	obj.Insert(kHash, ast.StringTerm(tok.Hash))
	obj.Insert(kIssuer, ast.StringTerm(tok.Issuer))
	obj.Insert(kClaims, ast.NewTerm(tok.Claims))
	obj.Insert(kBound, boundTerm(tok.Confirmation))
	return ast.NewTerm(obj)
}

// boundTerm says how the token is sender-constrained (RFC 9449 §6, RFC 8705 §3).
func boundTerm(c token.Confirmation) *ast.Term {
	method := "none"
	switch {
	case c.JKT != "":
		method = "dpop"
	case c.X5TS256 != "":
		method = "mtls"
	}
	if method == "none" {
		return tBoundNone
	}
	obj := ast.NewObject(ast.Item(ast.StringTerm("method"), ast.StringTerm(method)))
	if c.JKT != "" {
		obj.Insert(kJKT, ast.StringTerm(c.JKT))
	}
	if c.X5TS256 != "" {
		obj.Insert(kX5T, ast.StringTerm(c.X5TS256))
	}
	return ast.NewTerm(obj)
}

// dpopTerm describes the DPoP proof: whether one was sent, whether it
// verified (signature, htm, htu, iat, ath, nonce, jti not replayed) and the
// thumbprint of its key; the binding to the token is the policy's check.
func dpopTerm(p proofResult) *ast.Term {
	obj := ast.NewObject(
		ast.Item(kPresent, ast.BooleanTerm(p.present)),
		ast.Item(kValid, ast.BooleanTerm(p.valid)),
	)
	if p.jkt != "" {
		obj.Insert(kJKT, ast.StringTerm(p.jkt))
	}
	if p.err != nil {
		obj.Insert(kError, errorTerm(p.err.Code, p.err.Message))
	}
	if p.nonce != "" {
		obj.Insert(kNonce, ast.StringTerm(p.nonce))
	}
	return ast.NewTerm(obj)
}

// tokenEndpointTerm describes a token-endpoint request; a refresh token
// appears only as its hash and verified claims.
func tokenEndpointTerm(te *tokenEndpointResult) *ast.Term {
	obj := ast.NewObject(ast.Item(kGrantType, ast.StringTerm(te.grantType)))
	rr := te.refresh
	if rr == nil {
		return ast.NewTerm(obj)
	}
	r := ast.NewObject(
		ast.Item(kPresent, ast.BooleanTerm(rr.present)),
		ast.Item(kValid, ast.BooleanTerm(rr.valid)),
		ast.Item(kReused, ast.BooleanTerm(rr.reused)),
	)
	if rr.hash != "" {
		r.Insert(kHash, ast.StringTerm(rr.hash))
	}
	if rr.retried {
		r.Insert(ast.StringTerm("retried"), ast.BooleanTerm(true))
	}
	if rr.err != nil {
		r.Insert(kError, errorTerm(rr.err.Code, rr.err.Message))
	}
	if t := rr.tok; t != nil {
		r.Insert(kIssuer, ast.StringTerm(t.Issuer))
		r.Insert(kSubject, ast.StringTerm(t.Subject))
		r.Insert(kSessionID, ast.StringTerm(claimString(t.Claims, "sid")))
		r.Insert(kClientID, ast.StringTerm(t.ClientID))
		r.Insert(kFamily, ast.ObjectTerm(
			ast.Item(kID, ast.StringTerm(rr.family.ID)),
			ast.Item(kCreated, intTerm(rr.family.CreatedAt.UnixNano())),
			ast.Item(kRotations, intTerm(int64(rr.family.Rotations))),
		))
	}
	obj.Insert(kRefresh, ast.NewTerm(r))
	return ast.NewTerm(obj)
}

func errorTerm(code, message string) *ast.Term {
	return ast.ObjectTerm(ast.Item(kCode, ast.StringTerm(code)), ast.Item(kMessage, ast.StringTerm(message)))
}

func intTerm(n int64) *ast.Term {
	return ast.NumberTerm(json.Number(strconv.FormatInt(n, 10)))
}
