package ssf

import (
	"slices"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/store"
)

// Event type URI prefixes.
const (
	CAEPPrefix = "https://schemas.openid.net/secevent/caep/event-type/"
	RISCPrefix = "https://schemas.openid.net/secevent/risc/event-type/"
)

// The events that become revocations.
const (
	EventSessionRevoked         = CAEPPrefix + "session-revoked"
	EventCredentialChange       = CAEPPrefix + "credential-change"
	EventTokenClaimsChange      = CAEPPrefix + "token-claims-change"
	EventAssuranceLevelChange   = CAEPPrefix + "assurance-level-change"
	EventDeviceComplianceChange = CAEPPrefix + "device-compliance-change"

	EventAccountDisabled                 = RISCPrefix + "account-disabled"
	EventAccountPurged                   = RISCPrefix + "account-purged"
	EventCredentialCompromise            = RISCPrefix + "credential-compromise"
	EventAccountCredentialChangeRequired = RISCPrefix + "account-credential-change-required"
	EventIdentifierChanged               = RISCPrefix + "identifier-changed"
	EventIdentifierRecycled              = RISCPrefix + "identifier-recycled"
)

// knownEvents maps the events acted on to their short names, which also
// name the revocation reason ("ssf:<name>").
var knownEvents = map[string]string{
	EventSessionRevoked:                  "session-revoked",
	EventCredentialChange:                "credential-change",
	EventTokenClaimsChange:               "token-claims-change",
	EventAssuranceLevelChange:            "assurance-level-change",
	EventDeviceComplianceChange:          "device-compliance-change",
	EventAccountDisabled:                 "account-disabled",
	EventAccountPurged:                   "account-purged",
	EventCredentialCompromise:            "credential-compromise",
	EventAccountCredentialChangeRequired: "account-credential-change-required",
	EventIdentifierChanged:               "identifier-changed",
	EventIdentifierRecycled:              "identifier-recycled",
}

// EventNames returns the short names of the event types acted on, sorted:
// the event labels an Observer sees besides EventUnknown and EventNone.
func EventNames() []string {
	names := make([]string, 0, len(knownEvents))
	for _, n := range knownEvents {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// eventLabel names the event of a SET for an Observer: its short name,
// EventUnknown for another type, EventNone without a SET.
func eventLabel(set *SET) string {
	if set == nil {
		return EventNone
	}
	if name, ok := knownEvents[set.EventType]; ok {
		return name
	}
	return EventUnknown
}

// Subject identifier formats (RFC 9493, SSF complex subjects).
const (
	FormatIssSub  = "iss_sub"
	FormatEmail   = "email"
	FormatOpaque  = "opaque"
	FormatComplex = "complex"
)

// Reasons an accepted SET changes nothing (Result.Ignored).
const (
	IgnoredUnknownEvent    = "unknown event type"
	IgnoredUnknownSubject  = "unsupported subject format"
	IgnoredDeviceCompliant = "device became compliant"
)

// Bounds on what a log line repeats from a verified SET.
const (
	maxFormatInLog    = 64
	maxEventTypeInLog = 256
)

// target is one revocation an event asks for.
type target struct {
	kind   store.Kind
	issuer string
	value  string
}

// plan is what an event asks of the store.
type plan struct {
	name    string // short event name, empty for unknown events
	targets []target
	ignored string // why nothing is done, when targets is empty
	cutoff  time.Time
}

// planEvent decides the revocations a verified SET asks for.
func planEvent(set *SET, now time.Time) (plan, *Error) {
	var p plan
	name, known := knownEvents[set.EventType]
	if !known {
		p.ignored = IgnoredUnknownEvent
		return p, nil
	}
	p.name = name
	if set.EventType == EventDeviceComplianceChange {
		switch status, _ := stringMember(set.Event, "current_status"); status {
		case "compliant":
			p.ignored = IgnoredDeviceCompliant
			return p, nil
		case "not-compliant":
		default:
			return p, refuse(CodeInvalidRequest, "device-compliance-change needs current_status compliant or not-compliant")
		}
	}
	cutoff, rerr := cutoffOf(set, now)
	if rerr != nil {
		return p, rerr
	}
	p.cutoff = cutoff

	subj, rerr := parseSubject(set.Subject, true)
	if rerr != nil {
		return p, rerr
	}
	user, session := &subj, (*subject)(nil)
	if subj.format == FormatComplex {
		user, session = subj.user, subj.session
	}
	issuers := set.tx.cfg.TokenIssuers
	userT, rerr := user.resolve(issuers)
	if rerr != nil {
		return p, rerr
	}
	sessT, rerr := session.resolve(issuers)
	if rerr != nil {
		return p, rerr
	}
	switch {
	case set.EventType == EventSessionRevoked && len(sessT) > 0:
		p.targets = withKind(store.KindSession, sessT)
	case len(userT) > 0:
		p.targets = withKind(store.KindSubject, userT)
	case len(sessT) > 0:
		// A complex subject naming only a session: cutting the session
		// off is the narrowest revocation that still honours the event.
		p.targets = withKind(store.KindSession, sessT)
	default:
		p.ignored = IgnoredUnknownSubject
	}
	return p, nil
}

func withKind(k store.Kind, ts []target) []target {
	for i := range ts {
		ts[i].kind = k
	}
	return ts
}

// cutoffOf is the event's event_timestamp when present and not in the
// future, else the SET's iat, never later than now.
func cutoffOf(set *SET, now time.Time) (time.Time, *Error) {
	cutoff := set.IssuedAt
	if cutoff.After(now) {
		cutoff = now
	}
	if v := member(set.Event, "event_timestamp"); v != nil {
		ts, ok := numericDate(v)
		if !ok {
			return time.Time{}, refuse(CodeInvalidRequest, "event_timestamp must be a NumericDate")
		}
		if !ts.After(now) {
			cutoff = ts
		}
	}
	return cutoff, nil
}

// subject is a parsed subject identifier.
type subject struct {
	format string
	iss    string // iss_sub
	value  string // iss_sub sub, email address or opaque id
	// user and session are the members of a complex subject.
	user, session *subject
}

// parseSubject reads a subject identifier. Formats it does not know are
// returned with only their format set; known formats must be well formed.
func parseSubject(obj ast.Object, top bool) (subject, *Error) {
	format, ok := stringMember(obj, "format")
	if !ok {
		if member(obj, "format") != nil {
			return subject{}, refuse(CodeInvalidRequest, "the subject format must be a string")
		}
		// Early CAEP drafts wrote complex subjects without a format.
		if top && (member(obj, "user") != nil || member(obj, "session") != nil) {
			format = FormatComplex
		} else {
			return subject{}, refuse(CodeInvalidRequest, "the subject has no format")
		}
	}
	s := subject{format: format}
	var rerr *Error
	switch format {
	case FormatIssSub:
		if s.iss, rerr = subjectString(obj, "iss"); rerr != nil {
			return s, rerr
		}
		s.value, rerr = subjectString(obj, "sub")
	case FormatEmail:
		s.value, rerr = subjectString(obj, "email")
	case FormatOpaque:
		s.value, rerr = subjectString(obj, "id")
	case FormatComplex:
		if !top {
			return s, refuse(CodeInvalidRequest, "complex subjects do not nest")
		}
		if s.user, rerr = subjectMember(obj, "user"); rerr != nil {
			return s, rerr
		}
		s.session, rerr = subjectMember(obj, "session")
	}
	return s, rerr
}

func subjectMember(obj ast.Object, name string) (*subject, *Error) {
	v := member(obj, name)
	if v == nil {
		return nil, nil
	}
	o, ok := v.(ast.Object)
	if !ok {
		return nil, refuse(CodeInvalidRequest, "a complex subject member must be an object")
	}
	s, rerr := parseSubject(o, false)
	return &s, rerr
}

func subjectString(obj ast.Object, name string) (string, *Error) {
	s, ok := stringMember(obj, name)
	switch {
	case !ok || s == "":
		return "", refuse(CodeInvalidRequest, "the subject lacks a member its format requires")
	case len(s) > store.MaxFieldLen:
		return "", refuse(CodeInvalidRequest, "a subject member is too long")
	}
	return s, nil
}

// resolve returns the issuer and value pairs a simple subject names; none
// for a nil subject or a format this package does not act on. An iss_sub
// subject may only name one of the transmitter's token issuers.
func (s *subject) resolve(tokenIssuers []string) ([]target, *Error) {
	if s == nil {
		return nil, nil
	}
	switch s.format {
	case FormatIssSub:
		if !slices.Contains(tokenIssuers, s.iss) {
			return nil, refuse(CodeAccessDenied, "the subject's issuer is not one the transmitter may speak for")
		}
		return []target{{issuer: s.iss, value: s.value}}, nil
	case FormatEmail, FormatOpaque:
		ts := make([]target, 0, len(tokenIssuers))
		for _, iss := range tokenIssuers {
			ts = append(ts, target{issuer: iss, value: s.value})
		}
		return ts, nil
	}
	return nil, nil
}

// describeSubject names a subject's format for logs, without its values:
// "iss_sub", or "complex(user=iss_sub,session=opaque)".
func describeSubject(obj ast.Object) string {
	format, _ := stringMember(obj, "format")
	user, _ := member(obj, "user").(ast.Object)
	session, _ := member(obj, "session").(ast.Object)
	if format != FormatComplex && (format != "" || (user == nil && session == nil)) {
		return truncate(format, maxFormatInLog)
	}
	var b strings.Builder
	b.WriteString("complex(")
	sep := ""
	for _, m := range []struct {
		name string
		obj  ast.Object
	}{{"user", user}, {"session", session}} {
		if m.obj != nil {
			f, _ := stringMember(m.obj, "format")
			b.WriteString(sep + m.name + "=" + truncate(f, maxFormatInLog))
			sep = ","
		}
	}
	b.WriteString(")")
	return b.String()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}
