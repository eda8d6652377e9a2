package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// fileSetting is a setting that names a file or a directory.
type fileSetting struct {
	path, file string
	dir        bool // a directory, not a file
	either     bool // a file or a directory
}

// files lists every file and directory the configuration names.
func (c *Config) files() []fileSetting {
	f := func(path, file string) fileSetting { return fileSetting{path: path, file: file} }
	out := []fileSetting{
		{path: "policy.dir", file: c.Policy.Dir, dir: true},
		f("tls.cert_file", c.TLS.CertFile),
		f("tls.key_file", c.TLS.KeyFile),
		f("decide.auth.credential_file", c.Decide.Auth.CredentialFile),
		f("decide.auth.client_ca_file", c.Decide.Auth.ClientCAFile),
		f("ops.auth.token_file", c.Ops.Auth.TokenFile),
		f("admin.token_file", c.Admin.TokenFile),
		f("decision_logs.credentials_file", c.DecisionLogs.CredentialsFile),
		f("store.redis.password_file", c.Store.Redis.PasswordFile),
		f("dpop.nonce.secret_file", c.DPoP.Nonce.SecretFile),
		f("messaging.rabbitmq.credential_file", c.Messaging.RabbitMQ.CredentialFile),
	}
	out = append(out, c.Messaging.NATS.files()...)
	if v := c.Policy.Verification; v != nil {
		out = append(out, f("policy.verification.key_file", v.KeyFile))
	}
	for i, b := range c.Policy.Bundles {
		p := fmt.Sprintf("policy.bundles[%d]", i)
		out = append(out, fileSetting{path: p + ".path", file: b.Path, either: true}, f(p+".credentials_file", b.CredentialsFile))
	}
	out = append(out, fileSetting{path: "policy.shadow.dir", file: c.Policy.Shadow.Dir, dir: true})
	if v := c.Policy.Shadow.Verification; v != nil {
		out = append(out, f("policy.shadow.verification.key_file", v.KeyFile))
	}
	for i, b := range c.Policy.Shadow.Bundles {
		p := fmt.Sprintf("policy.shadow.bundles[%d]", i)
		out = append(out, fileSetting{path: p + ".path", file: b.Path, either: true}, f(p+".credentials_file", b.CredentialsFile))
	}
	for i, is := range c.Issuers {
		p := fmt.Sprintf("issuers[%d]", i)
		out = append(out, f(p+".jwks_file", is.JWKSFile))
		if in := is.Introspection; in != nil {
			out = append(out, f(p+".introspection.client_secret_file", in.ClientSecretFile))
		}
	}
	for i, t := range c.SSF.Transmitters {
		p := fmt.Sprintf("ssf.transmitters[%d]", i)
		out = append(out, f(p+".jwks_file", t.JWKSFile), f(p+".poll_token_file", t.PollTokenFile))
	}
	for i, rc := range c.Revoke.Clients {
		out = append(out, f(fmt.Sprintf("revoke.clients[%d].secret_file", i), rc.SecretFile))
	}
	return out
}

// CheckFiles reports, by path, every file or directory the configuration
// names that does not exist, cannot be read, or is a directory where a file
// is expected (or the reverse).
func (c *Config) CheckFiles() error {
	var errs []error
	for _, s := range c.files() {
		if s.file == "" {
			continue
		}
		if err := checkReadable(s); err != nil {
			errs = append(errs, &Problem{Path: s.path, Msg: err.Error()})
		}
	}
	return errors.Join(errs...)
}

func checkReadable(s fileSetting) error {
	st, err := os.Stat(s.file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s does not exist", s.file)
	case err != nil:
		return fmt.Errorf("%s: %v", s.file, err)
	case s.dir && !st.IsDir():
		return fmt.Errorf("%s is not a directory", s.file)
	case !s.dir && !s.either && !st.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", s.file)
	}
	if st.IsDir() {
		if _, err := os.ReadDir(s.file); err != nil {
			return fmt.Errorf("%s cannot be read: %v", s.file, err)
		}
		return nil
	}
	f, err := os.Open(s.file)
	if err != nil {
		return fmt.Errorf("%s cannot be read: %v", s.file, err)
	}
	defer f.Close()
	if _, err := f.Read(make([]byte, 1)); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%s cannot be read: %v", s.file, err)
	}
	return nil
}
