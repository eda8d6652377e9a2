package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// adminClient calls a running PDP's admin API.
type adminClient struct {
	server     string
	credential string
	http       *http.Client
}

func newRevokeCommand() *cobra.Command {
	var server, credFile string
	client := func() (*adminClient, error) {
		if credFile == "" {
			credFile = os.Getenv("PDP_ADMIN_TOKEN_FILE")
		}
		if credFile == "" {
			return nil, fmt.Errorf("--admin-token-file (or PDP_ADMIN_TOKEN_FILE) is required")
		}
		cred, err := readSecret(credFile)
		if err != nil {
			return nil, fmt.Errorf("admin token file: %w", err)
		}
		return &adminClient{server: strings.TrimRight(server, "/"), credential: cred, http: &http.Client{Timeout: 10 * time.Second}}, nil
	}
	c := &cobra.Command{
		Use:   "revoke",
		Short: "Revoke tokens, subjects, sessions or clients through a running PDP's admin API",
		Long: `Revoke through the admin API of a running PDP:

  pdp revoke jti|subject|session|client VALUE --iss ISSUER [--reason R] [--not-before RFC3339]
  pdp revoke user-event EVENT --iss ISSUER --sub SUBJECT [--at RFC3339]
  pdp revoke list [--kind K] [--iss I] [--value V]
  pdp revoke delete ID

Every command prints the admin API's JSON answer.`,
	}
	pf := c.PersistentFlags()
	pf.StringVar(&server, "server", envOr("PDP_SERVER", "http://127.0.0.1:8181"), "base URL of the PDP (PDP_SERVER)")
	pf.StringVar(&credFile, "admin-token-file", "", "file holding the admin bearer credential (PDP_ADMIN_TOKEN_FILE)")

	for _, kind := range []string{"jti", "subject", "session", "client"} {
		var iss, reason, notBefore string
		k := &cobra.Command{
			Use:   kind + " VALUE",
			Short: "Revoke by " + kind,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				body := map[string]any{"kind": kind, "iss": iss, "value": args[0], "reason": reason}
				if notBefore != "" {
					body["not_before"] = notBefore
				}
				a, err := client()
				if err != nil {
					return err
				}
				return a.do(cmd.Context(), cmd.OutOrStdout(), http.MethodPost, "/v1/admin/revocations", body)
			},
		}
		k.Flags().StringVar(&iss, "iss", "", "issuer of the tokens concerned (required)")
		k.Flags().StringVar(&reason, "reason", "", "why, for people")
		k.Flags().StringVar(&notBefore, "not-before", "", "cut-off (RFC 3339): tokens issued before it are revoked (default now)")
		_ = k.MarkFlagRequired("iss")
		c.AddCommand(k)
	}

	var evIss, evSub, evAt string
	ev := &cobra.Command{
		Use:   "user-event EVENT",
		Short: "Report a user state change (logout, disabled, deleted, password_changed, role_changed, credential_compromised)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"iss": evIss, "sub": evSub, "event": args[0]}
			if evAt != "" {
				body["at"] = evAt
			}
			a, err := client()
			if err != nil {
				return err
			}
			return a.do(cmd.Context(), cmd.OutOrStdout(), http.MethodPost, "/v1/admin/user-events", body)
		},
	}
	ev.Flags().StringVar(&evIss, "iss", "", "issuer (required)")
	ev.Flags().StringVar(&evSub, "sub", "", "subject (required)")
	ev.Flags().StringVar(&evAt, "at", "", "when it happened (RFC 3339, default now)")
	_ = ev.MarkFlagRequired("iss")
	_ = ev.MarkFlagRequired("sub")
	c.AddCommand(ev)

	var lsKind, lsIss, lsValue string
	ls := &cobra.Command{
		Use:   "list",
		Short: "List revocations",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			q := url.Values{}
			for k, v := range map[string]string{"kind": lsKind, "iss": lsIss, "value": lsValue} {
				if v != "" {
					q.Set(k, v)
				}
			}
			a, err := client()
			if err != nil {
				return err
			}
			path := "/v1/admin/revocations"
			if len(q) > 0 {
				path += "?" + q.Encode()
			}
			return a.do(cmd.Context(), cmd.OutOrStdout(), http.MethodGet, path, nil)
		},
	}
	ls.Flags().StringVar(&lsKind, "kind", "", "jti, subject, session or client")
	ls.Flags().StringVar(&lsIss, "iss", "", "issuer")
	ls.Flags().StringVar(&lsValue, "value", "", "revoked value")
	c.AddCommand(ls)

	c.AddCommand(&cobra.Command{
		Use:   "delete ID",
		Short: "Delete a revocation",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			a, err := client()
			if err != nil {
				return err
			}
			return a.do(cmd.Context(), cmd.OutOrStdout(), http.MethodDelete, "/v1/admin/revocations/"+url.PathEscape(args[0]), nil)
		},
	})
	return c
}

// do sends one admin request and prints the JSON answer; a non-2xx answer
// is an error carrying the problem's detail.
func (a *adminClient) do(ctx context.Context, out io.Writer, method, path string, body any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.server+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.credential)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var p struct {
			Title  string `json:"title"`
			Detail string `json:"detail"`
		}
		_ = json.Unmarshal(raw, &p)
		return fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, p.Title, p.Detail)
	}
	if len(bytes.TrimSpace(raw)) > 0 {
		var pretty bytes.Buffer
		if json.Indent(&pretty, raw, "", "  ") == nil {
			raw = append(pretty.Bytes(), '\n')
		}
		_, err = out.Write(raw)
	}
	return err
}

func envOr(name, fallback string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return fallback
}
