package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	opacmd "github.com/open-policy-agent/opa/cmd"
	"github.com/spf13/cobra"

	"github.com/tokenguard/pdp/client"
)

// Exit codes of `pdp check`.
const (
	checkAllowed = 0 // the PDP allowed
	checkDenied  = 1 // the PDP denied
	checkError   = 2 // usage error, unreadable file, no decision (unreachable, 5xx, overloaded, not a decision)
)

// maxTokenFile bounds what --token-file reads: the PDP refuses tokens over
// 16 KiB, and a file is not a token when it is much larger.
const maxTokenFile = 64 << 10

// messageOperations are the operations of the messaging contract.
var messageOperations = map[string]bool{"connect": true, "publish": true, "subscribe": true, "consume": true}

func newCheckCommand() *cobra.Command {
	var (
		server, tokenFile, request, message, vhost, credFile string
		headers                                              []string
		timeout                                              time.Duration
	)
	c := &cobra.Command{
		Use:   "check --token-file F (--request \"METHOD URL\" | --message \"OPERATION BROKER [DESTINATION]\")",
		Short: "Ask a running PDP whether a token may make a request or a messaging operation (for jobs and scripts)",
		Long: `Ask a running PDP (POST /v1/decide) whether a token may make one request
or one messaging operation, print the decision as JSON, and exit with its
outcome: a batch job can refuse to run on a token that should no longer work.

  pdp check --token-file job.token --request "GET https://api.example.com/v1/x"
  pdp check --token-file job.token --message "publish nats orders.created"
  pdp check --token-file job.token --message "connect nats"

--request is the method and the absolute URL; the token goes in
Authorization: Bearer. --message is the operation (connect, publish,
subscribe, consume), the broker and the destination (none for connect).
--token-file - reads the token from standard input.

The gateway credential (decide.auth.credential_file) is read from
--gateway-credential-file, else PDP_GATEWAY_CREDENTIAL_FILE.

Exit status: 0 allowed, 1 denied, 2 no decision: usage error, unreadable
token or credential file, PDP unreachable or too slow, an HTTP error
(5xx, 401, ...), an overloaded PDP (retry later), or an answer that is not
a decision.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return usageError(cmd, fmt.Errorf("takes no arguments, got %d", len(args)))
			}
			if tokenFile == "" {
				return usageError(cmd, errors.New("--token-file is required"))
			}
			if (request == "") == (message == "") {
				return usageError(cmd, errors.New("give one of --request and --message"))
			}
			if vhost != "" && message == "" {
				return usageError(cmd, errors.New("--vhost goes with --message"))
			}
			if len(headers) > 0 && request == "" {
				return usageError(cmd, errors.New("--header goes with --request"))
			}
			if timeout <= 0 {
				return usageError(cmd, errors.New("--timeout must be positive"))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error {
			if code := runCheck(cmd, checkArgs{server: server, tokenFile: tokenFile, request: request, message: message,
				vhost: vhost, credFile: credFile, headers: headers, timeout: timeout}); code != checkAllowed {
				return &opacmd.ExitError{Exit: code}
			}
			return nil
		},
	}
	c.SetFlagErrorFunc(usageError)
	f := c.Flags()
	f.StringVar(&server, "server", envOr("PDP_SERVER", "http://127.0.0.1:8181"), "base URL of the PDP (PDP_SERVER)")
	f.StringVar(&tokenFile, "token-file", "", "file holding the access token; - reads standard input")
	f.StringVar(&request, "request", "", `the request to decide: "METHOD URL"`)
	f.StringVar(&message, "message", "", `the messaging operation to decide: "OPERATION BROKER [DESTINATION]"`)
	f.StringVar(&vhost, "vhost", "", "the RabbitMQ virtual host of --message")
	f.StringArrayVar(&headers, "header", nil, `a header of --request, "Name: value" (repeatable; a DPoP proof, for example)`)
	f.StringVar(&credFile, "gateway-credential-file", os.Getenv("PDP_GATEWAY_CREDENTIAL_FILE"),
		"file holding the gateway credential of decide.auth (PDP_GATEWAY_CREDENTIAL_FILE)")
	f.DurationVar(&timeout, "timeout", 5*time.Second, "how long to wait for the decision")
	return c
}

type checkArgs struct {
	server, tokenFile, request, message, vhost, credFile string
	headers                                              []string
	timeout                                              time.Duration
}

func runCheck(cmd *cobra.Command, a checkArgs) int {
	stderr := cmd.ErrOrStderr()
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "pdp check: "+format+"\n", args...)
		return checkError
	}
	tok, err := readToken(cmd.InOrStdin(), a.tokenFile)
	if err != nil {
		return fail("--token-file: %v", err)
	}
	cred, err := readSecret(a.credFile)
	if err != nil {
		return fail("--gateway-credential-file: %v", err)
	}
	pdp, err := client.New(client.Options{Server: a.server, Credential: cred, Timeout: a.timeout})
	if err != nil {
		return fail("--server: %v", err)
	}
	defer pdp.Close()
	var d *client.Decision
	if a.request != "" {
		req, err := parseCheckRequest(a.request, a.headers)
		if err != nil {
			return fail("--request: %v", err)
		}
		req.Headers["Authorization"] = []string{"Bearer " + tok}
		d, err = pdp.Decide(cmd.Context(), req)
		return checkOutcome(cmd, d, err)
	}
	m, err := parseCheckMessage(a.message)
	if err != nil {
		return fail("--message: %v", err)
	}
	m.Token, m.VHost = tok, a.vhost
	d, err = pdp.DecideMessage(cmd.Context(), m)
	return checkOutcome(cmd, d, err)
}

// checkOutcome prints the decision and gives the exit code.
func checkOutcome(cmd *cobra.Command, d *client.Decision, err error) int {
	var over *client.OverloadedError
	switch {
	case errors.As(err, &over):
		printDecision(cmd.OutOrStdout(), d)
		fmt.Fprintf(cmd.ErrOrStderr(), "pdp check: %v\n", err)
		return checkError
	case err != nil:
		fmt.Fprintf(cmd.ErrOrStderr(), "pdp check: no decision: %v\n", err)
		return checkError
	}
	printDecision(cmd.OutOrStdout(), d)
	if d.Allow {
		return checkAllowed
	}
	return checkDenied
}

func printDecision(w io.Writer, d *client.Decision) {
	b, _ := json.MarshalIndent(d, "", "  ")
	fmt.Fprintln(w, string(b))
}

// readToken reads one token from path ("-": in): surrounding white space
// is not part of it, and it is one word.
func readToken(in io.Reader, path string) (string, error) {
	r := in
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return "", err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, maxTokenFile+1))
	if err != nil {
		return "", err
	}
	if len(b) > maxTokenFile {
		return "", fmt.Errorf("larger than %d bytes: not a token", maxTokenFile)
	}
	tok := strings.TrimSpace(string(b))
	switch {
	case tok == "":
		return "", errors.New("empty")
	case strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r == 0x7f }):
		return "", errors.New("not one token (white space or control characters inside)")
	}
	return tok, nil
}

// parseCheckRequest reads "METHOD URL" and the --header values.
func parseCheckRequest(s string, headers []string) (*client.Request, error) {
	f := strings.Fields(s)
	if len(f) != 2 {
		return nil, fmt.Errorf("%q: want \"METHOD URL\"", s)
	}
	u, err := url.Parse(f[1])
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an absolute http or https URL", f[1])
	}
	req := &client.Request{Method: f[0], URL: f[1], Headers: map[string][]string{}}
	for _, h := range headers {
		name, value, ok := strings.Cut(h, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return nil, fmt.Errorf("--header %q: want \"Name: value\"", h)
		}
		if strings.EqualFold(name, "Authorization") {
			return nil, errors.New("--header Authorization: the token comes from --token-file")
		}
		req.Headers[name] = append(req.Headers[name], strings.TrimSpace(value))
	}
	return req, nil
}

// parseCheckMessage reads "OPERATION BROKER [DESTINATION]".
func parseCheckMessage(s string) (*client.Message, error) {
	f := strings.Fields(s)
	if len(f) < 2 || len(f) > 3 {
		return nil, fmt.Errorf("%q: want \"OPERATION BROKER [DESTINATION]\"", s)
	}
	m := &client.Message{Operation: f[0], Broker: f[1]}
	if len(f) == 3 {
		m.Destination = f[2]
	}
	switch {
	case !messageOperations[m.Operation]:
		return nil, fmt.Errorf("operation %q: must be connect, publish, subscribe or consume", m.Operation)
	case m.Operation == "connect" && m.Destination != "":
		return nil, errors.New("a connect takes no destination")
	case m.Operation != "connect" && m.Destination == "":
		return nil, fmt.Errorf("a %s needs a destination", m.Operation)
	}
	return m, nil
}
