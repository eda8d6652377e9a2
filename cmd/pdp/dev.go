package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/devissuer"
)

// devAudience is the API the dev issuer's tokens are for.
const devAudience = "https://api.example.com"

// devMode is `pdp serve --dev`: an in-process issuer whose public keys the
// verifier reads like any other issuer's, from a JWKS file in data_dir.
type devMode struct {
	issuer *devissuer.Issuer
	// revokeSecret is the secret of the dev revoke client, devClient.
	revokeSecret string
	// logFormatSet: --log-format (or its environment variable) chose the
	// log format; otherwise dev mode logs text.
	logFormatSet bool
	// adminToken is the admin API's credential, made at start; adminFile
	// holds it (0600) for pdp revoke.
	adminToken, adminFile string
}

// devAdminTokenFile is where the dev mode, on the default data_dir, keeps
// the admin credential it made; pdp revoke reads it when given none.
var devAdminTokenFile = filepath.Join("data", devAdminTokenName)

const devAdminTokenName = "dev-admin-token"

// devClient is the client of the dev issuer's tokens; in dev mode it may
// revoke them at /v1/revoke with a secret made at start.
const devClient = "dev-client"

// configure adds the dev issuer to cfg and keeps the server on loopback.
func (d *devMode) configure(cfg *config.Config) error {
	host, _, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return errors.New("--dev listens on loopback only: set listen to 127.0.0.1:PORT")
	}
	d.issuer, err = devissuer.New("http://"+cfg.Listen+"/dev", "ES256")
	if err != nil {
		return fmt.Errorf("dev issuer: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data_dir: %w", err)
	}
	jwksFile := filepath.Join(cfg.DataDir, "dev-jwks.json")
	if err := writePrivateFile(jwksFile, d.issuer.JWKS()); err != nil {
		return fmt.Errorf("write dev JWKS: %w", err)
	}
	cfg.Issuers = append(cfg.Issuers, config.Issuer{
		Issuer:          d.issuer.URL(),
		JWKSFile:        jwksFile,
		Audiences:       []string{devAudience},
		AccessTokenType: "at+jwt",
	})
	if len(cfg.ForwardAuth.TrustedProxies) == 0 {
		// Loopback only: a gateway tried out beside the dev server is trusted.
		cfg.ForwardAuth.TrustedProxies = []string{"127.0.0.1/32", "::1/128"}
	}
	// A dev revoke client, so that /v1/revoke is on: its secret is made
	// now and printed by announce; the data dir holds only its hash.
	d.revokeSecret = rand.Text() + rand.Text()
	sum := sha256.Sum256([]byte(d.revokeSecret))
	secretFile := filepath.Join(cfg.DataDir, "dev-revoke-client.sha256")
	if err := writePrivateFile(secretFile, []byte(hex.EncodeToString(sum[:])+"\n")); err != nil {
		return fmt.Errorf("write dev revoke client: %w", err)
	}
	cfg.Revoke.Clients = append(cfg.Revoke.Clients, config.RevokeClient{ClientID: devClient, SecretFile: secretFile, Issuer: d.issuer.URL()})
	// The admin API, so that pdp revoke works at once: a credential made
	// now, kept 0600 in the data dir (the server is on loopback only).
	if cfg.Admin.TokenFile == "" {
		d.adminToken = rand.Text() + rand.Text()
		d.adminFile = filepath.Join(cfg.DataDir, devAdminTokenName)
		if err := writePrivateFile(d.adminFile, []byte(d.adminToken+"\n")); err != nil {
			return fmt.Errorf("write dev admin credential: %w", err)
		}
		cfg.Admin.TokenFile = d.adminFile
	}
	if !d.logFormatSet {
		cfg.Log.Format = "text"
	}
	return nil
}

// writePrivateFile writes data to a new 0600 file beside name and renames
// it to name: whatever name was (a symlink, a file others can read or hold
// open, a hard link), it is replaced, never written through.
func writePrivateFile(name string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, name)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// mount serves the dev issuer's JWKS and token endpoint.
func (d *devMode) mount(r chi.Router) {
	r.Method("GET", "/dev/jwks.json", d.issuer.JWKSHandler())
	r.Handle("/dev/token", d.issuer.TokenHandler(map[string]any{
		"aud":       devAudience,
		"sub":       "alice",
		"client_id": devClient,
		"scope":     "accounts:read",
	}))
}

// announce prints two ready-to-paste requests: one allowed, one denied.
func (d *devMode) announce(out io.Writer, addr string) {
	claims := map[string]any{"aud": devAudience, "sub": "alice", "client_id": devClient, "scope": "accounts:read",
		"exp": time.Now().Add(time.Hour).Unix()}
	allowed, err1 := d.issuer.Mint(claims)
	expiredClaims := map[string]any{"aud": devAudience, "sub": "alice", "client_id": devClient, "scope": "accounts:read",
		"iat": time.Now().Add(-2 * time.Hour).Unix(), "exp": time.Now().Add(-time.Hour).Unix()}
	expired, err2 := d.issuer.Mint(expiredClaims)
	if err := errors.Join(err1, err2); err != nil {
		fmt.Fprintln(out, "dev issuer could not mint example tokens:", err)
		return
	}
	const body = `{"request":{"method":"GET","url":"https://api.example.com/v1/accounts/42","headers":{"authorization":"Bearer %s"},"remote_ip":"203.0.113.7"}}`
	fmt.Fprintf(out, `
tokenguard is running in dev mode on http://%[1]s (issuer %[2]s)
More tokens: curl -s 'http://%[1]s/dev/token?sub=bob&scope=accounts:read'

# allowed (a valid token for %[3]s):
curl -s http://%[1]s/v1/decide -H 'Content-Type: application/json' -d '%[4]s'

# denied (the same token an hour expired: token_expired, 401):
curl -s http://%[1]s/v1/decide -H 'Content-Type: application/json' -d '%[5]s'

# revoke the allowed token (RFC 7009, as the dev revoke client %[6]s); the first request is then denied (token_revoked):
curl -s http://%[1]s/v1/revoke -u '%[6]s:%[7]s' -d 'token=%[8]s'

`, addr, d.issuer.URL(), devAudience, fmt.Sprintf(body, allowed), fmt.Sprintf(body, expired), devClient, d.revokeSecret, allowed)
	if d.adminFile != "" {
		fmt.Fprintf(out, `# the admin API is on (loopback only); its credential is in %[1]s:
#   Authorization: Bearer %[2]s
# revoke everything of alice's (from ./, pdp revoke reads the credential there):
pdp revoke subject alice --iss %[3]s --server http://%[4]s --admin-token-file %[1]s

`, d.adminFile, d.adminToken, d.issuer.URL(), addr)
	}
}
