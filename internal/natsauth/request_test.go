package natsauth

import (
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

// signedRequest is an authorization request as a server would send it,
// changed by edit before it is signed with serverKey.
func signedRequest(t testing.TB, serverKey nkeys.KeyPair, edit func(*jwt.AuthorizationRequestClaims)) string {
	t.Helper()
	spub, _ := serverKey.PublicKey()
	user, _ := nkeys.CreateUser()
	upub, _ := user.PublicKey()
	c := jwt.NewAuthorizationRequestClaims("ABJHLOVMPA4CI6R5KLNGOB4GSLNIY7IOUPAJC4YFNDLQVIOBYQGUWVLA")
	c.Audience = "nats-authorization-request"
	c.UserNkey = upub
	c.Server = jwt.ServerID{Name: "a", ID: spub}
	c.ClientInformation = jwt.ClientInformation{Host: "127.0.0.1", ID: 7, Kind: "Client", Type: "nats"}
	c.ConnectOptions = jwt.ConnectOptions{Token: "eyJtoken", Lang: "go", Version: "1.56.0"}
	c.Expires = time.Now().Add(time.Minute).Unix()
	if edit != nil {
		edit(c)
	}
	s, err := c.Encode(serverKey)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestParseRequest(t *testing.T) {
	serverKey, _ := nkeys.CreateServer()
	xkey, _ := nkeys.CreateCurveKeys()
	xpub, _ := xkey.PublicKey()
	serverX, _ := nkeys.CreateCurveKeys()
	serverXPub, _ := serverX.PublicKey()
	seal := func(s string) []byte {
		b, err := serverX.Seal([]byte(s), xpub)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tests := []struct {
		name      string
		data      []byte
		header    string
		xkey      nkeys.KeyPair
		wantToken string
		wantErr   string
	}{
		{name: "ok/token from auth_token", data: []byte(signedRequest(t, serverKey, nil)), wantToken: "eyJtoken"},
		{name: "ok/token from the password", data: []byte(signedRequest(t, serverKey, func(c *jwt.AuthorizationRequestClaims) {
			c.ConnectOptions = jwt.ConnectOptions{Username: "alice", Password: "eyJpassword"}
		})), wantToken: "eyJpassword"},
		{name: "ok/auth_token wins over the password", data: []byte(signedRequest(t, serverKey, func(c *jwt.AuthorizationRequestClaims) {
			c.ConnectOptions = jwt.ConnectOptions{Token: "eyJtoken", Password: "eyJpassword"}
		})), wantToken: "eyJtoken"},
		{name: "ok/no credential at all", data: []byte(signedRequest(t, serverKey, func(c *jwt.AuthorizationRequestClaims) {
			c.ConnectOptions = jwt.ConnectOptions{}
		})), wantToken: ""},
		{name: "ok/encrypted for the configured xkey", data: seal(signedRequest(t, serverKey, func(c *jwt.AuthorizationRequestClaims) {
			c.Server.XKey = serverXPub
		})), header: serverXPub, xkey: xkey, wantToken: "eyJtoken"},
		{name: "fail/too large", data: []byte("eyJ" + strings.Repeat("a", MaxRequestBytes)), wantErr: "more than"},
		{name: "fail/not a JWT", data: []byte("hello"), wantErr: "not a JWT"},
		{name: "fail/signature broken", data: []byte(signedRequest(t, serverKey, nil) + "x"), wantErr: "invalid authorization request"},
		// Not refused: the request's exp is the server's clock plus its
		// authorization timeout (2s), and a replay is harmless (the
		// answer is for a user key the server no longer waits for).
		{name: "ok/expired by this clock", data: []byte(signedRequest(t, serverKey, func(c *jwt.AuthorizationRequestClaims) {
			c.Expires = time.Now().Add(-time.Minute).Unix()
		})), wantToken: "eyJtoken"},
		{name: "fail/user key that is no user key", data: []byte(signedRequest(t, serverKey, func(c *jwt.AuthorizationRequestClaims) {
			c.UserNkey = "ABJHLOVMPA4CI6R5KLNGOB4GSLNIY7IOUPAJC4YFNDLQVIOBYQGUWVLA"
		})), wantErr: "user public key"},
		{name: "fail/server id that would change the kick subject", data: []byte(signedRequest(t, serverKey, func(c *jwt.AuthorizationRequestClaims) {
			c.Server.ID = "X.>"
		})), wantErr: "server id"},
		{name: "fail/encrypted without an xkey configured", data: []byte("sealed"), header: serverXPub, wantErr: "no xkey_seed_file"},
		{name: "fail/plain while an xkey is configured", data: []byte(signedRequest(t, serverKey, nil)), xkey: xkey, wantErr: "not encrypted"},
		{name: "fail/encrypted for another key", data: seal(signedRequest(t, serverKey, nil)), header: xpub, xkey: xkey, wantErr: "cannot be decrypted"},
		{name: "fail/header that is no curve key", data: []byte("x"), header: "nope", xkey: xkey, wantErr: "not a curve key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := parseRequest(tt.data, tt.header, tt.xkey)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrRequest) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want ErrRequest with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.Token != tt.wantToken || req.ClientID != 7 || req.Host != "127.0.0.1" || req.ServerXKey != tt.header {
				t.Errorf("request = %+v", req)
			}
		})
	}
}

// FuzzParseRequest feeds authorization requests whose client-controlled
// parts (token, password, name, user) are arbitrary, and arbitrary bytes.
func FuzzParseRequest(f *testing.F) {
	serverKey, _ := nkeys.CreateServer()
	f.Add([]byte(signedRequest(f, serverKey, nil)), "tok", "pw", "name")
	f.Add([]byte("eyJhbGciOiJlZDI1NTE5LW5rZXkiLCJ0eXAiOiJKV1QifQ.e30.AA"), "", "", "")
	f.Add([]byte{}, "\x00", "\xff", strings.Repeat("a", 1000))
	f.Fuzz(func(t *testing.T, raw []byte, tok, pw, name string) {
		if req, err := parseRequest(raw, "", nil); err == nil && !nkeys.IsValidPublicUserKey(req.UserNkey) {
			t.Fatalf("accepted a request without a user key: %+v", req)
		}
		signed := signedRequest(t, serverKey, func(c *jwt.AuthorizationRequestClaims) {
			c.ConnectOptions = jwt.ConnectOptions{Token: tok, Password: pw, Name: name}
		})
		req, err := parseRequest([]byte(signed), "", nil)
		if len(signed) > MaxRequestBytes {
			if err == nil {
				t.Fatal("accepted a request over the size bound")
			}
			return
		}
		if err != nil {
			t.Fatalf("a server's request refused: %v", err)
		}
		want := tok
		if want == "" {
			want = pw
		}
		// JSON carries no invalid UTF-8: the server's encoder replaces it.
		if utf8.ValidString(want) && req.Token != want {
			t.Fatalf("token = %q, want %q", req.Token, want)
		}
	})
}
