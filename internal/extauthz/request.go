package extauthz

import (
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"

	"github.com/tokenguard/pdp/internal/decision"
)

// partialBodyHeader is the header Envoy adds to a check request whose body
// it cut at with_request_body.max_request_bytes (allow_partial_message).
const partialBodyHeader = "x-envoy-auth-partial-body"

// A refusal is a check request that cannot be decided on: what the client
// is answered, with a detail safe to show.
type refusal struct {
	status int
	detail string
}

func refuse(status int, format string, args ...any) *refusal {
	return &refusal{status: status, detail: fmt.Sprintf(format, args...)}
}

// rawRequest translates the attributes of a check request into the request
// the decision pipeline normalises: the original method and absolute URL,
// its headers (pseudo-headers left out), the client address and certificate
// Envoy vouches for, and the form fields of an
// application/x-www-form-urlencoded body of at most maxBody bytes.
func rawRequest(req *authv3.CheckRequest, maxBody int) (decision.RawRequest, *refusal) {
	attrs := req.GetAttributes()
	h := attrs.GetRequest().GetHttp()
	if h == nil {
		return decision.RawRequest{}, refuse(http.StatusBadRequest, "the check request has no HTTP request attributes")
	}
	headers, pseudo := headersOf(h)

	method := firstNonEmpty(h.GetMethod(), pseudo[":method"])
	u, ref := absoluteURL(h, pseudo, headers)
	if ref != nil {
		return decision.RawRequest{}, ref
	}
	raw := decision.RawRequest{Method: method, URL: u, Headers: headers}

	// Envoy's own view of the downstream connection: believed, unlike any
	// X-Forwarded-For or client-certificate header the client may send.
	if a := attrs.GetSource().GetAddress().GetSocketAddress().GetAddress(); a != "" {
		ip, err := decision.ParseClientAddr(a)
		if err != nil {
			return decision.RawRequest{}, refuse(http.StatusBadRequest, "attributes.source.address %s",
				strings.TrimPrefix(err.Error(), decision.ErrClientAddr.Error()+": "))
		}
		raw.RemoteIP = ip.String()
	}
	if c := attrs.GetSource().GetCertificate(); c != "" {
		if len(c) > 3*decision.MaxClientCertPEM { // every byte percent-encoded
			return decision.RawRequest{}, refuse(http.StatusBadRequest, "attributes.source.certificate exceeds %d bytes", decision.MaxClientCertPEM)
		}
		pemText, err := url.PathUnescape(c)
		if err != nil {
			return decision.RawRequest{}, refuse(http.StatusBadRequest, "attributes.source.certificate is not URL-encoded PEM")
		}
		raw.ClientCertPEM = pemText
	}

	form, ref := formOf(h, headers, pseudo[partialBodyHeader] == "true", maxBody)
	if ref != nil {
		return decision.RawRequest{}, ref
	}
	raw.Form = form
	return raw, nil
}

// headersOf reads the request headers: from header_map when Envoy sends raw
// headers (encode_raw_headers; one entry per header line, so a repeated
// header keeps its values apart), else from headers (a repeated header
// arrives as one comma-joined value, and stays one value: a comma inside an
// Authorization value never makes two credentials). Names are lower-cased;
// pseudo-headers (:method, :authority, ...) are returned apart, and so is
// Envoy's partial-body marker, which is Envoy's, not the client's.
func headersOf(h *authv3.AttributeContext_HttpRequest) (headers map[string][]string, pseudo map[string]string) {
	pseudo = map[string]string{}
	add := func(name, value string) {
		name = strings.ToLower(name)
		switch {
		case strings.HasPrefix(name, ":"):
			if _, seen := pseudo[name]; !seen {
				pseudo[name] = value
			}
		case name == partialBodyHeader: // "true" anywhere: a client cannot unsay it
			if strings.Contains(value, "true") {
				pseudo[name] = "true"
			}
		default:
			headers[name] = append(headers[name], value)
		}
	}
	if hm := h.GetHeaderMap().GetHeaders(); len(hm) > 0 {
		headers = make(map[string][]string, len(hm))
		for _, hv := range hm {
			v := hv.GetValue()
			if rv := hv.GetRawValue(); len(rv) > 0 {
				v = string(rv)
			}
			add(hv.GetKey(), v)
		}
		return headers, pseudo
	}
	headers = make(map[string][]string, len(h.GetHeaders()))
	for name, v := range h.GetHeaders() {
		add(name, v)
	}
	return headers, pseudo
}

// absoluteURL rebuilds the URL the client asked for from the scheme, the
// host (:authority) and the path with its query, as Envoy saw them.
func absoluteURL(h *authv3.AttributeContext_HttpRequest, pseudo map[string]string, headers map[string][]string) (string, *refusal) {
	scheme := strings.ToLower(firstNonEmpty(h.GetScheme(), pseudo[":scheme"]))
	if scheme == "" {
		scheme = "https"
	}
	if scheme != "http" && scheme != "https" {
		return "", refuse(http.StatusBadRequest, "the request scheme is not http or https")
	}
	host := firstNonEmpty(h.GetHost(), pseudo[":authority"])
	if host == "" && len(headers["host"]) == 1 {
		host = headers["host"][0]
	}
	if host == "" {
		return "", refuse(http.StatusBadRequest, "the request has no host (:authority)")
	}
	// A host that could end the authority early (evil.example/x?) would
	// make the URL name another host than the one Envoy routed on.
	if strings.ContainsAny(host, "/?#@\\ \t\r\n") {
		return "", refuse(http.StatusBadRequest, "the request host is not a host")
	}
	path := firstNonEmpty(h.GetPath(), pseudo[":path"])
	if !strings.HasPrefix(path, "/") {
		return "", refuse(http.StatusBadRequest, "the request path must start with /")
	}
	return scheme + "://" + host + path, nil
}

// formOf reads the form fields of an application/x-www-form-urlencoded
// body that Envoy forwarded (with_request_body). A body Envoy cut short is
// refused (413): a form missing its tail could hide a field the token
// endpoint guardrails look at. Any other body is not read.
func formOf(h *authv3.AttributeContext_HttpRequest, headers map[string][]string, partial bool, maxBody int) (url.Values, *refusal) {
	if !isForm(headers) {
		return nil, nil
	}
	body := h.GetRawBody()
	if len(body) == 0 {
		body = []byte(h.GetBody())
	}
	if len(body) == 0 {
		return nil, nil
	}
	if partial || h.GetSize() > int64(len(body)) {
		return nil, refuse(http.StatusRequestEntityTooLarge, "the form body was cut short before authorization; it must be at most %d bytes", maxBody)
	}
	if len(body) > maxBody {
		return nil, refuse(http.StatusRequestEntityTooLarge, "the form body exceeds %d bytes", maxBody)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "the body is not application/x-www-form-urlencoded")
	}
	return form, nil
}

// isForm reports whether the request body is
// application/x-www-form-urlencoded.
func isForm(headers map[string][]string) bool {
	ct := headers["content-type"]
	if len(ct) == 0 {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct[0])
	return err == nil && mt == "application/x-www-form-urlencoded"
}

// bodyNotForwarded reports a form request whose body Envoy did not send
// (with_request_body is off): the token-endpoint guardrails cannot see it.
func bodyNotForwarded(req *authv3.CheckRequest, raw decision.RawRequest) bool {
	h := req.GetAttributes().GetRequest().GetHttp()
	return raw.Form == nil && h.GetSize() > 0 && len(h.GetBody()) == 0 && len(h.GetRawBody()) == 0 && isForm(raw.Headers)
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
