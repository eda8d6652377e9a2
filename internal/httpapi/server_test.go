package httpapi

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// smuggled is a second request hidden in the body of the first: a server
// that reads the first body by Transfer-Encoding and not by Content-Length
// (or the other way round) answers it.
const smuggled = "GET /v1/admin/secret HTTP/1.1\r\nHost: pdp\r\n\r\n"

// framingCases are requests whose framing is ambiguous, each followed on
// the connection by the smuggled request; the server must answer the first
// one with status and close the connection without answering the second.
var framingCases = []struct {
	name   string
	raw    string
	status int
}{
	{"fail/Content-Length and Transfer-Encoding chunked",
		"POST /v1/decide HTTP/1.1\r\nHost: pdp\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
	{"fail/Transfer-Encoding chunked without Content-Length",
		"POST /v1/decide HTTP/1.1\r\nHost: pdp\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
	{"fail/Transfer-Encoding chunked on a GET",
		"GET /healthz HTTP/1.1\r\nHost: pdp\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
	{"fail/Transfer-Encoding in capitals",
		"POST /v1/decide HTTP/1.1\r\nHost: pdp\r\nContent-Length: 5\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n" + smuggled, 400},
	{"fail/Transfer-Encoding chunked, chunked",
		"POST /v1/decide HTTP/1.1\r\nHost: pdp\r\nContent-Length: 5\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n" + smuggled, 501},
	{"fail/two Transfer-Encoding fields",
		"POST /v1/decide HTTP/1.1\r\nHost: pdp\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 501},
	{"fail/Transfer-Encoding identity",
		"POST /v1/decide HTTP/1.1\r\nHost: pdp\r\nContent-Length: 5\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n" + smuggled, 501},
	{"fail/Transfer-Encoding gzip, chunked",
		"POST /v1/decide HTTP/1.1\r\nHost: pdp\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n" + smuggled, 501},
	{"fail/Transfer-Encoding folded onto a second line (obs-fold)",
		"POST /v1/decide HTTP/1.1\r\nHost: pdp\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
	{"fail/Transfer-Encoding with a space before the colon",
		"POST /v1/decide HTTP/1.1\r\nHost: pdp\r\nContent-Length: 5\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n" + smuggled, 400},
	{"fail/two differing Content-Length fields",
		"POST /v1/decide HTTP/1.1\r\nHost: pdp\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\n{\"a\":1}" + smuggled, 400},
	{"fail/Content-Length with a sign",
		"POST /v1/decide HTTP/1.1\r\nHost: pdp\r\nContent-Length: +5\r\n\r\n{\"a\":1}" + smuggled, 400},
	{"fail/Content-Length as a list",
		"POST /v1/decide HTTP/1.1\r\nHost: pdp\r\nContent-Length: 5, 5\r\n\r\n{\"a\":1}" + smuggled, 400},
	{"ok/HTTP/1.0 with Transfer-Encoding and keep-alive is read by Content-Length, then closed",
		"POST /v1/decide HTTP/1.0\r\nHost: pdp\r\nConnection: keep-alive\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, 200},
	{"ok/HTTP/1.0 keep-alive is closed after one answer",
		"GET /healthz HTTP/1.0\r\nHost: pdp\r\nConnection: keep-alive\r\n\r\n" + smuggled, 200},
}

// testHandler answers every path 200, the secret one with "ADMIN".
func testHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if r.URL.Path == "/v1/admin/secret" {
			_, _ = io.WriteString(w, "ADMIN")
			return
		}
		_, _ = io.WriteString(w, "ok")
	})
}

// exchange writes raw on a fresh connection from dial and reads until the
// server closes it. closed is false when the server kept it open.
func exchange(t *testing.T, dial func() (net.Conn, error), raw string) (answers []*http.Response, bodies []string, closed bool) {
	t.Helper()
	conn, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return answers, bodies, false
			}
			return answers, bodies, errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || isReset(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		answers = append(answers, resp)
		bodies = append(bodies, string(b))
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// TestFramingRefusesSmuggling runs every ambiguous framing against the
// server NewServer builds, in plain text and over TLS: one answer, then
// the connection closes, and the smuggled request is never answered.
func TestFramingRefusesSmuggling(t *testing.T) {
	plain := httptest.NewUnstartedServer(nil)
	plain.Config = NewServer(testHandler(), nil)
	plain.Start()
	defer plain.Close()
	secure := httptest.NewUnstartedServer(nil)
	secure.Config = NewServer(testHandler(), nil)
	secure.StartTLS()
	defer secure.Close()
	listeners := []struct {
		name string
		dial func() (net.Conn, error)
	}{
		{"http", func() (net.Conn, error) { return net.Dial("tcp", plain.Listener.Addr().String()) }},
		{"https", func() (net.Conn, error) {
			return tls.Dial("tcp", secure.Listener.Addr().String(), &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
		}},
	}
	for _, l := range listeners {
		for _, tt := range framingCases {
			t.Run(l.name+"/"+tt.name, func(t *testing.T) {
				answers, bodies, closed := exchange(t, l.dial, tt.raw)
				if len(answers) != 1 {
					t.Fatalf("%d answers %q, want 1", len(answers), bodies)
				}
				if answers[0].StatusCode != tt.status {
					t.Errorf("status %d %q, want %d", answers[0].StatusCode, bodies[0], tt.status)
				}
				if !closed {
					t.Error("the connection stayed open")
				}
				if strings.Contains(bodies[0], "ADMIN") {
					t.Error("the smuggled request was answered")
				}
				if !answers[0].Close {
					t.Error("the answer does not say Connection: close")
				}
			})
		}
		t.Run(l.name+"/ok/HTTP/1.1 keep-alive with Content-Length serves both requests", func(t *testing.T) {
			answers, bodies, _ := exchange(t, l.dial, "POST /v1/decide HTTP/1.1\r\nHost: pdp\r\nContent-Length: 2\r\n\r\n{}"+
				"GET /v1/admin/secret HTTP/1.1\r\nHost: pdp\r\nConnection: close\r\n\r\n")
			if len(answers) != 2 || bodies[1] != "ADMIN" {
				t.Fatalf("answers %q, want two, the second ADMIN", bodies)
			}
		})
	}
}

// TestFramingProblem: the refusal is the API's problem document.
func TestFramingProblem(t *testing.T) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/v1/decide", strings.NewReader("{}"))
	req.TransferEncoding = []string{"chunked"}
	Framing(testHandler()).ServeHTTP(rec, req)
	if rec.Code != 400 || rec.Header().Get("Content-Type") != "application/problem+json" || rec.Header().Get("Connection") != "close" ||
		!strings.Contains(rec.Body.String(), TypeInvalidRequest) {
		t.Fatalf("= %d %v %s", rec.Code, rec.Header(), rec.Body)
	}
}
