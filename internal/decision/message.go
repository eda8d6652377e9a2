package decision

import (
	"net/url"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"

	"github.com/tokenguard/pdp/internal/token"
)

// Limits on a messaging operation, enforced before any token parsing.
const (
	MaxBrokerBytes      = 32
	MaxDestinationBytes = 1024
	MaxVHostBytes       = 255
)

// Operations a message may ask about.
const (
	OpConnect   = "connect"
	OpPublish   = "publish"
	OpSubscribe = "subscribe"
	OpConsume   = "consume"
	OpConfigure = "configure"
)

// operations are the operations a message may name.
var operations = map[string]bool{OpConnect: true, OpPublish: true, OpSubscribe: true, OpConsume: true, OpConfigure: true}

// Message is a messaging operation a broker (or a service on its behalf)
// asks about instead of an HTTP request: the policy sees it as
// input.message. It carries no HTTP request, so nothing can be bound to a
// DPoP proof or a client certificate.
type Message struct {
	// Broker names the broker: nats, rabbitmq, kafka, ... (lower case).
	Broker string
	// Operation is connect, publish, subscribe, consume or configure.
	Operation string
	// Destination is the subject, exchange, queue, topic or routing key
	// the operation is on; "" for connect.
	Destination string
	// VHost is the broker's virtual host (RabbitMQ), or "".
	VHost string
	// Verified is a token this process verified earlier and a transport
	// kept, or nil: the engine rechecks its times and decides with it
	// instead of verifying a raw token (RabbitMQ's later checks carry only
	// the user name).
	Verified *token.Token
}

// RawMessage is a messaging operation as a transport received it, before
// validation.
type RawMessage struct {
	Broker      string
	Operation   string
	Destination string
	VHost       string
	// Token is the access token, or "" when Headers carries it (as
	// "authorization": ["Bearer …"]) or Verified is set.
	Token string
	// Headers are the broker's headers; only authorization is read.
	Headers  map[string][]string
	RemoteIP string
	Context  ast.Object
	// Verified: see Message.Verified; Token and Headers are then empty.
	Verified *token.Token
}

// NewMessage validates raw into a Request whose Message is set. Errors
// wrap ErrInvalidRequest and say what is wrong in words safe to return to
// the caller.
func NewMessage(raw RawMessage) (*Request, error) {
	m := &Message{Verified: raw.Verified}
	switch {
	case raw.Broker == "":
		return nil, invalid("message.broker is required")
	case len(raw.Broker) > MaxBrokerBytes || !isBrokerName(raw.Broker):
		return nil, invalid("message.broker must be up to %d lower-case letters, digits, '-' or '_'", MaxBrokerBytes)
	}
	m.Broker = raw.Broker
	if !operations[raw.Operation] {
		return nil, invalid("message.operation must be one of connect, publish, subscribe, consume, configure")
	}
	m.Operation = raw.Operation
	switch {
	case raw.Operation == OpConnect && raw.Destination != "":
		return nil, invalid("message.destination must be absent for connect")
	case raw.Operation != OpConnect && raw.Destination == "":
		return nil, invalid("message.destination is required for %s", raw.Operation)
	case len(raw.Destination) > MaxDestinationBytes:
		return nil, invalid("message.destination exceeds %d bytes", MaxDestinationBytes)
	case !printable(raw.Destination):
		return nil, invalid("message.destination holds control characters or invalid UTF-8")
	}
	m.Destination = raw.Destination
	switch {
	case len(raw.VHost) > MaxVHostBytes:
		return nil, invalid("message.vhost exceeds %d bytes", MaxVHostBytes)
	case !printable(raw.VHost):
		return nil, invalid("message.vhost holds control characters or invalid UTF-8")
	}
	m.VHost = raw.VHost

	// Only the credential is read from the headers: there is no HTTP
	// request whose other headers (a DPoP proof, a user agent) the policy
	// could trust to belong to the token.
	headers, err := normalizeHeaders(raw.Headers)
	if err != nil {
		return nil, invalidMessageHeaders(err)
	}
	auth := headers["authorization"]
	switch {
	case raw.Verified != nil && (raw.Token != "" || len(auth) > 0):
		return nil, invalid("message: a verified token takes no token or authorization header")
	case raw.Token != "" && len(auth) > 0:
		return nil, invalid("message: give the token or an authorization header, not both")
	case raw.Token != "":
		if strings.ContainsAny(raw.Token, " \t\r\n") {
			return nil, invalid("message.token holds white space")
		}
		auth = []string{"Bearer " + raw.Token}
	}
	req := &Request{Message: m, URL: &url.URL{}, Context: raw.Context, Headers: map[string][]string{}}
	if len(auth) > 0 {
		req.Headers["authorization"] = auth
	}
	if raw.RemoteIP != "" {
		ip, err := ParseClientAddr(raw.RemoteIP)
		if err != nil {
			return nil, invalid("message.remote_ip %s", strings.TrimPrefix(err.Error(), ErrClientAddr.Error()+": "))
		}
		req.RemoteIP = ip
	}
	return req, nil
}

// invalidMessageHeaders renames the request.headers errors of
// normalizeHeaders for a message.
func invalidMessageHeaders(err error) error {
	msg := strings.TrimPrefix(err.Error(), ErrInvalidRequest.Error()+": ")
	return invalid("%s", strings.Replace(msg, "request.headers", "message.headers", 1))
}

func isBrokerName(s string) bool {
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	for _, r := range s {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0xfffd {
			return false
		}
	}
	return true
}
