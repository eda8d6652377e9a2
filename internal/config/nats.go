package config

import (
	"net/url"
	"strings"
	"time"
)

// NATS makes the PDP a NATS auth callout service (nats-server 2.10 or
// later, accounts configured in the server's file): the server asks the PDP
// about every connecting client, the PDP decides a connect with the token
// the client gave as its auth_token or password, and answers with a user
// JWT whose permissions are the NATS destinations (data.pdp.destinations)
// the token may use. Live connections whose token, session or subject is
// revoked are closed through the system account.
type NATS struct {
	// Enabled turns the auth callout service on.
	Enabled bool `mapstructure:"enabled"`
	// URL is the NATS server to connect to (nats://, tls://, ws:// or
	// wss://); several servers of one cluster are separated by commas.
	URL string `mapstructure:"url"`
	// User is the callout user, one of auth_callout.auth_users in the
	// server's config (an account's user, in auth_callout.account).
	User string `mapstructure:"user"`
	// PasswordFile holds User's password (trailing white space trimmed).
	PasswordFile string `mapstructure:"password_file"`
	// CredentialsFile is a NATS .creds file (user JWT and nkey seed) for
	// the callout user, the alternative to User and PasswordFile.
	CredentialsFile string `mapstructure:"credentials_file"`
	// IssuerSeedFile holds the account nkey seed (SA...) that signs the
	// answers and the user JWTs; its public key is the server's
	// auth_callout.issuer.
	IssuerSeedFile string `mapstructure:"issuer_seed_file"`
	// Account is the account authorized clients are placed in (the user
	// JWT's audience).
	Account string `mapstructure:"account"`
	// XKeySeedFile, when set, holds the curve key seed (SX...) whose
	// public key is the server's auth_callout.xkey: requests and answers
	// are then encrypted.
	XKeySeedFile string `mapstructure:"xkey_seed_file"`
	// SystemUser is a user of the system account, which closes the live
	// connections whose token is revoked ($SYS.REQ.SERVER.<id>.KICK) and
	// hears of closed ones. It must be one of auth_callout.auth_users too.
	SystemUser string `mapstructure:"system_user"`
	// SystemPasswordFile holds SystemUser's password.
	SystemPasswordFile string `mapstructure:"system_password_file"`
	// QueueGroup is the queue group of the callout subscription: replicas
	// in the same group share the requests.
	QueueGroup string `mapstructure:"queue_group"`
	// CheckInterval is the pause between two revocation checks of the live
	// connections (at most 2s, so that a revoked connection is closed
	// within 5s of its revocation).
	CheckInterval time.Duration `mapstructure:"check_interval"`
	// MaxConnections bounds the live connections tracked for revocation;
	// past it new connections are refused (reason overloaded) until some
	// close or expire.
	MaxConnections int `mapstructure:"max_connections"`
}

// files lists the files the NATS section names.
func (n NATS) files() []fileSetting {
	f := func(path, file string) fileSetting { return fileSetting{path: "messaging.nats." + path, file: file} }
	return []fileSetting{
		f("password_file", n.PasswordFile),
		f("credentials_file", n.CredentialsFile),
		f("issuer_seed_file", n.IssuerSeedFile),
		f("xkey_seed_file", n.XKeySeedFile),
		f("system_password_file", n.SystemPasswordFile),
	}
}

// NATS limits checked by Validate.
const (
	MinNATSCheckInterval = 100 * time.Millisecond
	MaxNATSCheckInterval = 2 * time.Second
)

// validateMessaging reports the problems of the messaging section.
func (c *Config) validateMessaging(bad func(path, format string, args ...any)) {
	if l := c.Messaging.MaxConnectionLifetime; l < time.Second || l > 24*time.Hour {
		bad("messaging.max_connection_lifetime", "must be between 1s and 24h")
	}
	n := c.Messaging.NATS
	if !n.Enabled {
		return
	}
	const p = "messaging.nats."
	if n.URL == "" {
		bad(p+"url", "must be set")
	}
	for _, raw := range strings.Split(n.URL, ",") {
		if n.URL == "" {
			break
		}
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.Host == "" {
			bad(p+"url", "%q is not a URL with a host", raw)
			continue
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			bad(p+"url", "%q: the scheme must be nats, tls, ws or wss", raw)
		}
		if u.User != nil {
			bad(p+"url", "must not carry credentials (use user and password_file)")
		}
	}
	switch {
	case n.CredentialsFile != "" && (n.User != "" || n.PasswordFile != ""):
		bad(p+"credentials_file", "credentials_file and user/password_file are exclusive")
	case n.CredentialsFile == "" && (n.User == "" || n.PasswordFile == ""):
		bad(p+"user", "user and password_file (or credentials_file) must be set")
	}
	if n.IssuerSeedFile == "" {
		bad(p+"issuer_seed_file", "must be set")
	}
	if n.Account == "" || strings.ContainsAny(n.Account, " \t\r\n.*>") {
		bad(p+"account", "must be an account name (no white space, '.', '*' or '>')")
	}
	if n.SystemUser == "" || n.SystemPasswordFile == "" {
		bad(p+"system_user", "system_user and system_password_file must be set: revoked connections are closed through the system account")
	}
	if n.QueueGroup == "" || strings.ContainsAny(n.QueueGroup, " \t\r\n.*>") {
		bad(p+"queue_group", "must be one subject token (no white space, '.', '*' or '>')")
	}
	if n.CheckInterval < MinNATSCheckInterval || n.CheckInterval > MaxNATSCheckInterval {
		bad(p+"check_interval", "must be between %s and %s", MinNATSCheckInterval, MaxNATSCheckInterval)
	}
	if n.MaxConnections < 1 || n.MaxConnections > 10_000_000 {
		bad(p+"max_connections", "must be between 1 and 10000000")
	}
}
