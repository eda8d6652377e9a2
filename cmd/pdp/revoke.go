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
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tokenguard/pdp/internal/httpapi"
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
			// Right after `pdp serve --dev`: its generated credential.
			if _, err := os.Stat(devAdminTokenFile); err == nil {
				credFile = devAdminTokenFile
			}
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

  pdp revoke jti|subject|session|client VALUE --iss ISSUER [--reason R] [--not-before DATE] [--force]
  pdp revoke user-event EVENT --iss ISSUER --sub SUBJECT [--at DATE] [--force]
  pdp revoke list [--kind K] [--iss I] [--value V]
  pdp revoke delete ID

DATE is RFC 3339 (2026-01-02T15:04:05Z) or YYYY-MM-DD (that day's first
instant in UTC). An issuer the PDP does not have configured is refused (a
revocation for it would stop nothing); --force stores it all the same.

The credential is read from --admin-token-file, else PDP_ADMIN_TOKEN_FILE,
else ` + devAdminTokenFile + ` (written by pdp serve --dev). Every command
prints the admin API's JSON answer.`,
	}
	pf := c.PersistentFlags()
	pf.StringVar(&server, "server", envOr("PDP_SERVER", "http://127.0.0.1:8181"), "base URL of the PDP (PDP_SERVER)")
	pf.StringVar(&credFile, "admin-token-file", "", "file holding the admin bearer credential (PDP_ADMIN_TOKEN_FILE)")

	for _, kind := range []string{"jti", "subject", "session", "client"} {
		var iss, reason, notBefore string
		var force bool
		k := &cobra.Command{
			Use:   kind + " VALUE",
			Short: "Revoke by " + kind,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				body := map[string]any{"kind": kind, "iss": iss, "value": args[0], "reason": reason}
				if notBefore != "" {
					t, err := httpapi.ParseWhen(notBefore)
					if err != nil {
						return fmt.Errorf("--not-before: %w", err)
					}
					body["not_before"] = t.Format(time.RFC3339Nano)
				}
				a, err := client()
				if err != nil {
					return err
				}
				if err := a.checkIssuer(cmd.Context(), iss, force); err != nil {
					return err
				}
				return a.do(cmd.Context(), cmd.OutOrStdout(), http.MethodPost, "/v1/admin/revocations", body)
			},
		}
		k.Flags().StringVar(&iss, "iss", "", "issuer of the tokens concerned (required)")
		k.Flags().StringVar(&reason, "reason", "", "why, for people")
		k.Flags().StringVar(&notBefore, "not-before", "", "cut-off (RFC 3339 or YYYY-MM-DD): tokens issued before it are revoked (default now)")
		k.Flags().BoolVar(&force, "force", false, "revoke even for an issuer the PDP does not have configured")
		_ = k.MarkFlagRequired("iss")
		c.AddCommand(k)
	}

	var evIss, evSub, evAt string
	var evForce bool
	ev := &cobra.Command{
		Use:   "user-event EVENT",
		Short: "Report a user state change (logout, disabled, deleted, password_changed, role_changed, credential_compromised)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body := map[string]any{"iss": evIss, "sub": evSub, "event": args[0]}
			if evAt != "" {
				t, err := httpapi.ParseWhen(evAt)
				if err != nil {
					return fmt.Errorf("--at: %w", err)
				}
				body["at"] = t.Format(time.RFC3339Nano)
			}
			a, err := client()
			if err != nil {
				return err
			}
			if err := a.checkIssuer(cmd.Context(), evIss, evForce); err != nil {
				return err
			}
			return a.do(cmd.Context(), cmd.OutOrStdout(), http.MethodPost, "/v1/admin/user-events", body)
		},
	}
	ev.Flags().StringVar(&evIss, "iss", "", "issuer (required)")
	ev.Flags().StringVar(&evSub, "sub", "", "subject (required)")
	ev.Flags().StringVar(&evAt, "at", "", "when it happened (RFC 3339 or YYYY-MM-DD, default now)")
	ev.Flags().BoolVar(&evForce, "force", false, "report it even for an issuer the PDP does not have configured")
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

// checkIssuer refuses an issuer the PDP does not have configured, unless
// force: a revocation for it would silently stop nothing.
func (a *adminClient) checkIssuer(ctx context.Context, iss string, force bool) error {
	if force {
		return nil
	}
	var out bytes.Buffer
	if err := a.do(ctx, &out, http.MethodGet, "/v1/admin/issuers", nil); err != nil {
		return fmt.Errorf("cannot check that %q is a configured issuer (--force skips the check): %w", iss, err)
	}
	var list struct {
		Issuers []string `json:"issuers"`
	}
	if err := json.Unmarshal(out.Bytes(), &list); err != nil {
		return fmt.Errorf("GET /v1/admin/issuers: %w", err)
	}
	if slices.Contains(list.Issuers, iss) {
		return nil
	}
	return fmt.Errorf("issuer %q is not configured on %s, so revoking for it stops no token (configured: %s); check for a typo, or pass --force",
		iss, a.server, strings.Join(list.Issuers, ", "))
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
