package extauthz

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/tokenguard/pdp/internal/decision"
)

// recorder is a Decider that records what it was asked and answers with
// answer (a copy of dec, or err).
type recorder struct {
	mu     sync.Mutex
	reqs   []*decision.Request
	answer func(*decision.Request) (*decision.Decision, error)
}

func (r *recorder) Decide(_ context.Context, req *decision.Request) (*decision.Decision, error) {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	answer := r.answer
	r.mu.Unlock()
	if answer == nil {
		return &decision.Decision{Allow: true, Status: 200}, nil
	}
	return answer(req)
}

func (r *recorder) last(t *testing.T) *decision.Request {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.reqs) == 0 {
		t.Fatal("the decider was never asked")
	}
	return r.reqs[len(r.reqs)-1]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.reqs)
}

// answering returns a recorder that always answers dec.
func answering(dec decision.Decision, err error) *recorder {
	return &recorder{answer: func(*decision.Request) (*decision.Decision, error) {
		d := dec
		return &d, err
	}}
}

// testServer is a Server on a real loopback listener with a client.
type testServer struct {
	srv    *Server
	auth   authv3.AuthorizationClient
	health healthpb.HealthClient
	stop   func() error // cancels Serve and returns what it returned
}

// startServer serves s on 127.0.0.1:0 until the test ends.
func startServer(t *testing.T, d Decider, opts Options, dial ...grpc.DialOption) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(d, opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	var once sync.Once
	var serveErr error
	stop := func() error {
		once.Do(func() { cancel(); serveErr = <-done })
		return serveErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	if len(dial) == 0 {
		dial = []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	conn, err := grpc.NewClient(ln.Addr().String(), dial...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return &testServer{srv: s, auth: authv3.NewAuthorizationClient(conn), health: healthpb.NewHealthClient(conn), stop: stop}
}

func (ts *testServer) check(t *testing.T, req *authv3.CheckRequest) *authv3.CheckResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	resp, err := ts.auth.Check(ctx, req)
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return resp
}

// envoyRequest is a check request as Envoy sends it for a GET of
// https://api.example.com/v1/accounts/42 from 203.0.113.7, headers in the
// headers map (pseudo-headers included, as Envoy does).
func envoyRequest(headers map[string]string) *authv3.CheckRequest {
	h := map[string]string{
		":authority": "api.example.com", ":method": "GET", ":path": "/v1/accounts/42", ":scheme": "https",
	}
	for k, v := range headers {
		h[k] = v
	}
	return &authv3.CheckRequest{Attributes: &authv3.AttributeContext{
		Source: &authv3.AttributeContext_Peer{Address: socketAddress("203.0.113.7", 54321)},
		Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
			Id: "req-1", Method: "GET", Scheme: "https", Host: "api.example.com", Path: "/v1/accounts/42",
			Headers: h, Protocol: "HTTP/1.1", Size: 0,
		}},
	}}
}

func socketAddress(ip string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

// deniedOf returns the denied response of resp, failing if it is an allow.
func deniedOf(t *testing.T, resp *authv3.CheckResponse) (*authv3.DeniedHttpResponse, denyBody) {
	t.Helper()
	if resp.GetStatus().GetCode() == 0 {
		t.Fatalf("an OK status on what must be a deny: %v", resp)
	}
	d := resp.GetDeniedResponse()
	if d == nil {
		t.Fatalf("no denied response: %v", resp)
	}
	var body denyBody
	if err := json.Unmarshal([]byte(d.GetBody()), &body); err != nil {
		t.Fatalf("the denied body is not JSON: %v: %q", err, d.GetBody())
	}
	return d, body
}

// headerOf returns the value of name among opts and whether it overwrites.
func headerOf(opts []*corev3.HeaderValueOption, name string) (value string, overwrites, found bool) {
	for _, o := range opts {
		if o.GetHeader().GetKey() == name {
			return o.GetHeader().GetValue(),
				o.GetAppendAction() == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD && o.GetAppend() != nil && !o.GetAppend().GetValue(),
				true
		}
	}
	return "", false, false
}

// selfSigned returns a certificate (PEM), its RFC 8705 thumbprint and a
// TLS certificate of the same key, signed by parent (self-signed when nil).
func selfSigned(t testing.TB, cn string, isCA bool, parent *tls.Certificate) (string, string, tls.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: isCA, BasicConstraintsValid: true, DNSNames: []string{cn},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if isCA {
		tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature
	}
	signer, issuer := any(key), tmpl
	if parent != nil {
		signer, issuer = parent.PrivateKey, parent.Leaf
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, issuer, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	sum := sha256.Sum256(der)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})),
		base64.RawURLEncoding.EncodeToString(sum[:]),
		tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// tlsDial is the dial option of a client trusting ca, presenting client
// (none when nil).
func tlsDial(ca *tls.Certificate, client *tls.Certificate) grpc.DialOption {
	pool := x509.NewCertPool()
	pool.AddCert(ca.Leaf)
	tc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	if client != nil {
		tc.Certificates = []tls.Certificate{*client}
	}
	return grpc.WithTransportCredentials(credentials.NewTLS(tc))
}
