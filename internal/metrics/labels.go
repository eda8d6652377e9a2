package metrics

import (
	"strconv"

	"github.com/tokenguard/pdp/internal/decision"
	"github.com/tokenguard/pdp/internal/httpapi"
	"github.com/tokenguard/pdp/internal/ssf"
	"github.com/tokenguard/pdp/internal/store"
	"github.com/tokenguard/pdp/internal/token"
)

// Label values outside an allow-list.
const (
	labelOther = "other"
	reasonNone = "none"
	grantNone  = "none"
)

// reasonCodes are the stable reason codes (docs/reason-codes.md): the
// only values the reason label takes besides "none" and "other".
var reasonCodes = set(
	"token_missing", "request_invalid", "token_malformed", "token_signature_invalid",
	"token_alg_not_allowed", "token_type_invalid", "issuer_untrusted", "audience_mismatch",
	"token_expired", "token_not_yet_valid", "token_claims_missing", "token_claims_invalid",
	"token_inactive", "introspection_failed", "grant_type_not_allowed",
	"dpop_required", "dpop_proof_invalid", "dpop_replayed", "dpop_binding_mismatch", "dpop_nonce_required",
	"mtls_binding_mismatch", "sender_constraint_required", "token_binding_unsupported",
	"lifetime_exceeded", "token_too_old", "token_replay_suspected",
	"route_unknown", "destination_unknown", "scope_insufficient", "scope_restricted", "grant_intent_mismatch",
	"delegation_too_deep", "ip_not_allowed",
	"refresh_token_reused", "refresh_token_expired", "refresh_token_invalid",
	"token_revoked", "subject_revoked", "session_revoked", "client_revoked",
	"policy_error", "state_unavailable", "request_path_invalid", "overloaded", "canceled", "refresh_token_retried",
)

// grantTypes are the grant types with a module in rego/grants.
var grantTypes = set("authorization_code", "client_credentials", "refresh_token", "device_code", "token_exchange")

var (
	jwksTriggers          = set(token.TriggerScheduled, token.TriggerUnknownKey)
	introspectionOutcomes = set(token.IntrospectionActive, token.IntrospectionInactive, token.IntrospectionError)
	ssfEvents             = set(append(ssf.EventNames(), ssf.EventUnknown, ssf.EventNone)...)
	storeChecks           = set(string(store.CheckReplay), string(store.CheckRefresh), string(store.CheckFingerprint), string(store.CheckRevocationWrite), string(store.CheckFingerprintWrite))
	ssfOutcomes           = set(ssf.OutcomeApplied, ssf.OutcomeIgnored, ssf.OutcomeDuplicate, ssf.OutcomeRefused, ssf.OutcomeStoreFailure)
	revokeOutcomes        = set(httpapi.RevokeOutcomes...)
	shadowResults         = set(decision.ShadowAgree, decision.ShadowDisagree, decision.ShadowSkipped, decision.ShadowError)
)

// outcomeLabel is a decision's outcome: allow or deny.
func outcomeLabel(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

// ReasonLabel maps a reason code to its label value: the code itself when
// it is one of the stable reason codes, "other" otherwise.
func ReasonLabel(code string) string { return oneOf(code, reasonCodes) }

// GrantTypeLabel maps a grant type to its label value: a known grant type,
// "none" when there is none, "other" otherwise.
func GrantTypeLabel(gt string) string {
	if gt == "" {
		return grantNone
	}
	return oneOf(gt, grantTypes)
}

// statusLabel is an HTTP error status, or "other".
func statusLabel(status int) string {
	if status < 400 || status > 599 {
		return labelOther
	}
	return strconv.Itoa(status)
}

// oneOf returns v when allowed holds it, "other" otherwise.
func oneOf(v string, allowed map[string]bool) string {
	if allowed[v] {
		return v
	}
	return labelOther
}

func set(vs ...string) map[string]bool {
	m := make(map[string]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m
}
