//go:build integration

package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/store"
)

// rabbitMQServer is one real RabbitMQ broker (Debian's rabbitmq-server)
// started for a test, in a directory of its own, on free ports, with the
// HTTP auth backend pointed at a decision point.
type rabbitMQServer struct {
	dir      string
	amqpPort int
	epmdPort int
	cmd      *exec.Cmd
	exited   chan struct{}
}

// rabbitMQBinary finds rabbitmq-server: the script that runs the broker in
// the foreground (not /usr/sbin's wrapper, which changes user and
// directory). Outside CI a missing broker skips the test; in CI (.ci/run
// installs it) it fails.
func rabbitMQBinary(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/usr/lib/rabbitmq/bin/rabbitmq-server"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("rabbitmq-server"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("rabbitmq-server is not installed (.ci/run installs Debian's rabbitmq-server)")
	}
	t.Skip("rabbitmq-server is not installed: apt-get install -y rabbitmq-server to run this test (CI does)")
	return ""
}

// freeTCPPort is a port nothing listens on now.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startRabbitMQ starts a broker whose auth_http URLs call pdpURL with
// rabbitMQCredential, and waits until it has started (its log says so);
// it is stopped, and its epmd with it, when the test ends.
func startRabbitMQ(t *testing.T, pdpURL string) *rabbitMQServer {
	t.Helper()
	bin := rabbitMQBinary(t)
	s := &rabbitMQServer{dir: t.TempDir(), amqpPort: freeTCPPort(t), epmdPort: freeTCPPort(t), exited: make(chan struct{})}
	distPort := freeTCPPort(t)
	u, err := url.Parse(pdpURL)
	if err != nil {
		t.Fatal(err)
	}
	user, pass, _ := strings.Cut(rabbitMQCredential, ":")
	u.User = url.UserPassword(user, pass)
	var conf strings.Builder
	fmt.Fprintf(&conf, "listeners.tcp.default = 127.0.0.1:%d\n", s.amqpPort)
	conf.WriteString("auth_backends.1 = http\nauth_http.http_method = post\n")
	for _, p := range []string{"user", "vhost", "resource", "topic"} {
		fmt.Fprintf(&conf, "auth_http.%s_path = %s/v1/rabbitmq/%s\n", p, u.String(), p)
	}
	for _, d := range []string{"mnesia", "log", "home"} {
		if err := os.MkdirAll(filepath.Join(s.dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	write := func(name, content string) string {
		p := filepath.Join(s.dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	confFile := write("rabbitmq.conf", conf.String())
	plugins := write("enabled_plugins", "[rabbitmq_auth_backend_http].\n")
	out, err := os.Create(filepath.Join(s.dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = out.Close() })
	s.cmd = exec.Command(bin)
	s.cmd.Dir = s.dir
	s.cmd.Stdout, s.cmd.Stderr = out, out
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	s.cmd.Env = append(os.Environ(),
		"HOME="+filepath.Join(s.dir, "home"), // the Erlang cookie
		"RABBITMQ_MNESIA_BASE="+filepath.Join(s.dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(s.dir, "log"),
		"RABBITMQ_LOGS="+s.logFile(),
		fmt.Sprintf("RABBITMQ_NODENAME=tokenguard-%d@localhost", s.amqpPort),
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(s.amqpPort),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(distPort),
		"ERL_EPMD_PORT="+strconv.Itoa(s.epmdPort),
		"RABBITMQ_CONFIG_FILE="+confFile,
		"RABBITMQ_ENABLED_PLUGINS_FILE="+plugins,
	)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start rabbitmq-server: %v", err)
	}
	go func() { _ = s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.stop(t) })

	// Readiness: the broker logs that its startup is complete (plugins
	// and listeners up). Polled, with the process watched.
	deadline := time.After(90 * time.Second)
	for {
		if b, _ := os.ReadFile(s.logFile()); strings.Contains(string(b), "Server startup complete") {
			return s
		}
		select {
		case <-s.exited:
			t.Fatalf("rabbitmq-server exited during startup:\n%s", s.logs())
		case <-deadline:
			t.Fatalf("rabbitmq-server did not start within 90s:\n%s", s.logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (s *rabbitMQServer) logFile() string { return filepath.Join(s.dir, "log", "rabbit.log") }

func (s *rabbitMQServer) logs() string {
	a, _ := os.ReadFile(filepath.Join(s.dir, "stdout.log"))
	b, _ := os.ReadFile(s.logFile())
	const keep = 8 << 10
	text := string(a) + "\n" + string(b)
	if len(text) > keep {
		text = "…" + text[len(text)-keep:]
	}
	return text
}

// stop ends the broker's process group (SIGTERM, then SIGKILL after 20s)
// and the epmd it started on its own port.
func (s *rabbitMQServer) stop(t *testing.T) {
	if s.cmd.Process != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
			<-s.exited
		}
	}
	epmd, err := exec.LookPath("epmd")
	if err != nil {
		epmd = "/usr/lib/erlang/bin/epmd"
	}
	if out, err := exec.Command(epmd, "-port", strconv.Itoa(s.epmdPort), "-kill").CombinedOutput(); err != nil {
		t.Logf("epmd -port %d -kill: %v %s", s.epmdPort, err, out)
	}
	if t.Failed() {
		t.Logf("rabbitmq-server logs:\n%s", s.logs())
	}
}

// dial connects as the token's subject with the token as the password.
func (s *rabbitMQServer) dial(sub, tok string) (*amqp.Connection, error) {
	u := url.URL{Scheme: "amqp", User: url.UserPassword(sub, tok), Host: "127.0.0.1:" + strconv.Itoa(s.amqpPort), Path: "/"}
	return amqp.DialConfig(u.String(), amqp.Config{Dial: amqp.DefaultDial(10 * time.Second)})
}

// publish publishes one message on a new channel (a channel caches what it
// was granted) in confirm mode, and returns nil once the broker confirmed
// it, or the error the broker closed the channel with.
func publish(conn *amqp.Connection, exchange, key string) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	defer ch.Close()
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if err := ch.Confirm(false); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, false, false, amqp.Publishing{Body: []byte("order 42")})
	if err != nil {
		return err
	}
	select {
	case <-conf.Done():
		if !conf.Acked() {
			return errors.New("the broker nacked the message")
		}
		return nil
	case e := <-closed:
		if e == nil {
			return errors.New("the channel closed")
		}
		return e
	case <-ctx.Done():
		return ctx.Err()
	}
}

// accessRefused reports whether err is the broker's 403 ACCESS_REFUSED.
func accessRefused(err error) bool {
	var e *amqp.Error
	return errors.As(err, &e) && e.Code == amqp.AccessRefused
}

// TestIntegrationRabbitMQ runs a real RabbitMQ whose HTTP auth backend
// calls a real decision point (the shipped policy, with RabbitMQ
// destinations) and connects with a real AMQP 0-9-1 client, the access
// token as the password.
func TestIntegrationRabbitMQ(t *testing.T) {
	tb := newTestbed(t, func(c *config.Config) {
		c.Policy.Dir = policyWithData(t, rabbitMQPolicyData(t))
		withRabbitMQ(t)(c)
	})
	broker := startRabbitMQ(t, tb.pdp.URL)
	es := tb.issuers["ES256"]
	now := time.Now()
	mint := func(sub string, claims map[string]any) string {
		c := map[string]any{"sub": sub, "scope": "orders:write", "iat": now.Add(-10 * time.Second).Unix(), "exp": now.Add(5 * time.Minute).Unix()}
		for k, v := range claims {
			c[k] = v
		}
		return tb.mint(t, "ES256", c)
	}

	t.Run("ok/publish with a valid token", func(t *testing.T) {
		conn, err := broker.dial("alice", mint("alice", nil))
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close()
		if err := publish(conn, "amq.topic", "orders.created"); err != nil {
			t.Fatalf("publish to amq.topic orders.created: %v", err)
		}
	})
	t.Run("fail/publish outside the token's scopes", func(t *testing.T) {
		conn, err := broker.dial("alice", mint("alice", nil))
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close()
		for _, ex := range []struct{ exchange, key, why string }{
			{"amq.direct", "payments", "a destination that needs payments:write"},
			{"amq.fanout", "", "no destination names it"},
			{"amq.topic", "payments.created", "a routing key no destination grants"},
		} {
			if err := publish(conn, ex.exchange, ex.key); !accessRefused(err) {
				t.Errorf("publish to %s %q (%s): %v, want ACCESS_REFUSED", ex.exchange, ex.key, ex.why, err)
			}
		}
	})
	t.Run("fail/a revoked subject's next publish", func(t *testing.T) {
		conn, err := broker.dial("bob", mint("bob", nil))
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		defer conn.Close()
		if err := publish(conn, "amq.topic", "orders.created"); err != nil {
			t.Fatalf("publish before the revocation: %v", err)
		}
		revokedAt := time.Now()
		if _, err := tb.app.store.PutRevocation(context.Background(), store.Revocation{
			Kind: store.KindSubject, Issuer: es.URL(), Value: "bob", Reason: "account disabled",
			NotBefore: revokedAt, ExpiresAt: revokedAt.Add(time.Hour),
		}); err != nil {
			t.Fatal(err)
		}
		// The very next publish, on a new channel of the live connection.
		err = publish(conn, "amq.topic", "orders.created")
		if !accessRefused(err) {
			t.Fatalf("publish after the revocation: %v, want ACCESS_REFUSED", err)
		}
		t.Logf("refused %v after the revocation was written", time.Since(revokedAt))
		if _, err := broker.dial("bob", mint("bob", nil)); !errors.Is(err, amqp.ErrCredentials) && !accessRefused(err) {
			t.Fatalf("connect after the revocation: %v, want refused", err)
		}
	})
	t.Run("fail/an expired token at connect", func(t *testing.T) {
		tok := mint("carol", map[string]any{"iat": now.Add(-20 * time.Minute).Unix(), "exp": now.Add(-10 * time.Minute).Unix()})
		conn, err := broker.dial("carol", tok)
		if err == nil {
			conn.Close()
			t.Fatal("connected with an expired token")
		}
		if !errors.Is(err, amqp.ErrCredentials) && !accessRefused(err) {
			t.Fatalf("connect: %v, want refused credentials", err)
		}
	})
	t.Run("fail/a token as another user's password", func(t *testing.T) {
		if conn, err := broker.dial("mallory", mint("alice", nil)); err == nil {
			conn.Close()
			t.Fatal("connected as mallory with alice's token")
		}
	})
}
