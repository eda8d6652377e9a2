package config

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

func TestMessagingNATS(t *testing.T) {
	load := func(t *testing.T, extra string) (Config, error) {
		t.Helper()
		return Load(writeConfig(t, validYAML+extra), pflag.NewFlagSet("x", pflag.ContinueOnError), nil, nil)
	}
	const enabled = `
messaging:
  nats:
    enabled: true
    url: nats://127.0.0.1:4222
    user: auth
    password_file: /run/secrets/nats-auth
    issuer_seed_file: /run/secrets/nats-issuer.nk
    account: APP
    system_user: sys
    system_password_file: /run/secrets/nats-sys
`
	t.Run("ok/off by default, connections capped at 5m", func(t *testing.T) {
		c, err := load(t, "")
		if err != nil {
			t.Fatal(err)
		}
		n := c.Messaging.NATS
		if n.Enabled || c.Messaging.MaxConnectionLifetime != 5*time.Minute || n.CheckInterval != 2*time.Second ||
			n.QueueGroup != "tokenguard" || n.MaxConnections != 100_000 {
			t.Errorf("defaults: %+v", c.Messaging)
		}
	})
	t.Run("ok/enabled with a callout user and a system user", func(t *testing.T) {
		c, err := load(t, enabled+"  max_connection_lifetime: 90s\n")
		if err != nil {
			t.Fatal(err)
		}
		if !c.Messaging.NATS.Enabled || c.Messaging.NATS.Account != "APP" || c.Messaging.MaxConnectionLifetime != 90*time.Second {
			t.Errorf("messaging: %+v", c.Messaging)
		}
	})
	t.Run("ok/enabled from the environment", func(t *testing.T) {
		t.Setenv("PDP_MESSAGING_NATS_CHECK_INTERVAL", "500ms")
		c, err := load(t, enabled)
		if err != nil {
			t.Fatal(err)
		}
		if c.Messaging.NATS.CheckInterval != 500*time.Millisecond {
			t.Errorf("check_interval = %s", c.Messaging.NATS.CheckInterval)
		}
	})
	for name, tt := range map[string]struct{ yaml, path string }{
		"fail/lifetime of zero":                          {"messaging:\n  max_connection_lifetime: 0s\n", "messaging.max_connection_lifetime"},
		"fail/url of another scheme":                     {strings.Replace(enabled, "nats://127.0.0.1", "http://127.0.0.1", 1), "messaging.nats.url"},
		"fail/credentials in the url":                    {strings.Replace(enabled, "nats://127.0.0.1", "nats://a:b@127.0.0.1", 1), "messaging.nats.url"},
		"fail/no callout credential":                     {strings.Replace(enabled, "    password_file: /run/secrets/nats-auth\n", "", 1), "messaging.nats.user"},
		"fail/credentials file and password both":        {enabled + "    credentials_file: /run/secrets/auth.creds\n", "messaging.nats.credentials_file"},
		"fail/no issuer seed":                            {strings.Replace(enabled, "    issuer_seed_file: /run/secrets/nats-issuer.nk\n", "", 1), "messaging.nats.issuer_seed_file"},
		"fail/account with a wildcard":                   {strings.Replace(enabled, "account: APP", "account: \"APP.>\"", 1), "messaging.nats.account"},
		"fail/no system user":                            {strings.Replace(enabled, "    system_user: sys\n", "", 1), "messaging.nats.system_user"},
		"fail/check interval too long to kick within 5s": {enabled + "    check_interval: 3s\n", "messaging.nats.check_interval"},
		"fail/no connection may be tracked":              {enabled + "    max_connections: 0\n", "messaging.nats.max_connections"},
		"fail/queue group of two tokens":                 {enabled + "    queue_group: a.b\n", "messaging.nats.queue_group"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, tt.yaml)
			if err == nil || !strings.Contains(err.Error(), tt.path+":") {
				t.Fatalf("err = %v, want one naming %s", err, tt.path)
			}
		})
	}
}
