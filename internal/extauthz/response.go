package extauthz

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/code"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tokenguard/pdp/internal/decision"
)

// UpstreamPrefix starts the names of the headers tokenguard sends upstream.
// Whatever the client sent under it is removed from an allowed request.
const UpstreamPrefix = "x-tokenguard-"

// DecisionIDHeader carries the decision id upstream on an allow.
const DecisionIDHeader = UpstreamPrefix + "decision-id"

// allowed answers an allow: the decision's upstream headers replace any the
// client sent, every other client-sent x-tokenguard-* header is removed, and
// the decision's client headers (a fresh DPoP-Nonce) go into the response.
func allowed(dec *decision.Decision, requestHeaders map[string][]string) *authv3.CheckResponse {
	ok := &authv3.OkHttpResponse{}
	set := make(map[string]bool, len(dec.UpstreamHeaders)+1)
	for _, name := range sortedKeys(dec.UpstreamHeaders) {
		lname := strings.ToLower(name)
		if !settable(lname, dec.UpstreamHeaders[name]) {
			continue
		}
		set[lname] = true
		ok.Headers = append(ok.Headers, overwrite(lname, dec.UpstreamHeaders[name]))
	}
	if !set[DecisionIDHeader] {
		set[DecisionIDHeader] = true
		ok.Headers = append(ok.Headers, overwrite(DecisionIDHeader, dec.ID))
	}
	for _, name := range sortedKeys(requestHeaders) {
		if strings.HasPrefix(name, UpstreamPrefix) && !set[name] {
			ok.HeadersToRemove = append(ok.HeadersToRemove, name)
		}
	}
	for _, name := range sortedKeys(dec.Headers) {
		if lname := strings.ToLower(name); settable(lname, dec.Headers[name]) {
			ok.ResponseHeadersToAdd = append(ok.ResponseHeadersToAdd, overwrite(lname, dec.Headers[name]))
		}
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(code.Code_OK)},
		HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: ok},
	}
}

// denyBody is the body of every denied response.
type denyBody struct {
	Error       string   `json:"error"`
	Description string   `json:"error_description,omitempty"`
	Reasons     []string `json:"reasons"`
	DecisionID  string   `json:"decision_id"`
}

// denied answers a deny with the decision's status, its client headers
// (WWW-Authenticate, DPoP-Nonce) and a small JSON body. The gRPC status is
// never OK, so Envoy denies whatever failure_mode_allow says.
func denied(status int, headers map[string]string, body denyBody) *authv3.CheckResponse {
	if _, known := typev3.StatusCode_name[int32(status)]; !known || status < 400 {
		status = http.StatusForbidden
	}
	if body.Reasons == nil {
		body.Reasons = []string{}
	}
	if body.Error == "" {
		body.Error = challengeError(headers["www-authenticate"])
	}
	if body.Error == "" && len(body.Reasons) > 0 {
		body.Error = body.Reasons[0]
	}
	b, _ := json.Marshal(body) // strings only: never fails
	resp := &authv3.DeniedHttpResponse{
		Status: &typev3.HttpStatus{Code: typev3.StatusCode(status)},
		Body:   string(b),
	}
	for _, name := range sortedKeys(headers) {
		if lname := strings.ToLower(name); settable(lname, headers[name]) {
			resp.Headers = append(resp.Headers, overwrite(lname, headers[name]))
		}
	}
	resp.Headers = append(resp.Headers,
		overwrite("content-type", "application/json"),
		overwrite("cache-control", "no-store"))
	msg := "denied"
	if len(body.Reasons) > 0 {
		msg += ": " + strings.Join(body.Reasons, ", ")
	}
	return &authv3.CheckResponse{
		Status:       &rpcstatus.Status{Code: int32(grpcCode(status)), Message: msg},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: resp},
	}
}

// grpcCode is the gRPC status of a denied check with HTTP status s. Envoy
// only tells OK from not OK; the code is for its logs and traces.
func grpcCode(s int) code.Code {
	switch {
	case s == http.StatusUnauthorized:
		return code.Code_UNAUTHENTICATED
	case s == http.StatusBadRequest || s == http.StatusRequestEntityTooLarge:
		return code.Code_INVALID_ARGUMENT
	case s == http.StatusServiceUnavailable:
		return code.Code_UNAVAILABLE
	case s >= 500:
		return code.Code_INTERNAL
	default:
		return code.Code_PERMISSION_DENIED
	}
}

// overwrite sets a header, replacing any value it had. Both the deprecated
// append=false (older Envoys) and the append action say so.
func overwrite(name, value string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: name, Value: value},
		Append:       wrapperspb.Bool(false), // deprecated, read by Envoys without append_action
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// settable reports whether a header the policy asked for can be set: a
// token name that is no pseudo-header or Host, and a value without
// control characters (no header injection whatever a claim holds).
func settable(name, value string) bool {
	if name == "" || name == "host" || !decision.IsToken(name) || len(value) > 8<<10 {
		return false
	}
	for i := range len(value) {
		if c := value[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// challengeParam matches the error parameter of a WWW-Authenticate
// challenge (RFC 6750 §3, RFC 9449 §7.1).
var challengeParam = regexp.MustCompile(`(?:^|[\s,])error="([^"]*)"`)

// challengeError is the error="..." parameter of a challenge, or "".
func challengeError(challenge string) string {
	if m := challengeParam.FindStringSubmatch(challenge); m != nil {
		return m[1]
	}
	return ""
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
