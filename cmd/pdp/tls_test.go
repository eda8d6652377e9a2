package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
)

// testCA issues certificates for the TLS tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "gateway CA"}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a PEM certificate and key for cn, for server or client use.
func (ca *testCA) issue(t *testing.T, cn string, server bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	if server {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
		tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
	} else {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

// TestDecideOverTLSAdmitsOnlyGateways serves the API with serverTLS and a
// gateway client CA: a gateway with a certificate from the CA may ask, a
// caller without one (or with a foreign one) gets 401.
func TestDecideOverTLSAdmitsOnlyGateways(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	srvCert, srvKey := ca.issue(t, "pdp", true)
	gwCert, gwKey := ca.issue(t, "gateway", false)
	foreignCert, foreignKey := newTestCA(t).issue(t, "intruder", false)
	var cfg config.Config
	tb := newTestbed(t, func(c *config.Config) {
		c.TLS = config.TLS{CertFile: write("srv.crt", srvCert), KeyFile: write("srv.key", srvKey)}
		c.Decide.Auth.ClientCAFile = write("ca.pem", ca.pem)
		cfg = *c
	})
	tc, err := serverTLS(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(tb.pdp.Config.Handler)
	srv.TLS = tc
	srv.StartTLS()
	defer srv.Close()

	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	client := func(certPEM, keyPEM []byte) *http.Client {
		c := &tls.Config{RootCAs: roots}
		if certPEM != nil {
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatal(err)
			}
			c.Certificates = []tls.Certificate{pair}
		}
		return &http.Client{Transport: &http.Transport{TLSClientConfig: c}}
	}
	body := `{"request":{"method":"GET","url":"https://api.example.com/v1/accounts/42","headers":{"authorization":"Bearer ` + tb.mint(t, "ES256", nil) + `"}}}`
	for _, tt := range []struct {
		name     string
		cert     []byte
		key      []byte
		status   int
		wantBody string
	}{
		{"ok/a gateway with a certificate from the CA", gwCert, gwKey, 200, `"allow":true`},
		{"fail/no client certificate", nil, nil, 401, "only authenticated gateways"},
		{"fail/a certificate from another CA", foreignCert, foreignKey, 0, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := client(tt.cert, tt.key).Post(srv.URL+"/v1/decide", "application/json", strings.NewReader(body))
			if tt.status == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("a foreign client certificate was accepted: %d", resp.StatusCode)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b := new(strings.Builder)
			_, _ = io.Copy(b, resp.Body)
			if resp.StatusCode != tt.status || !strings.Contains(b.String(), tt.wantBody) {
				t.Errorf("= %d %s", resp.StatusCode, b)
			}
		})
	}
}
