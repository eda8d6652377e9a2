//go:build integration

package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tokenguard/pdp/internal/config"
	"github.com/tokenguard/pdp/internal/redistest"
)

// TestIntegrationRedisPasswordFile: the password comes from
// store.redis.password_file; with a wrong one the replica never reports
// ready.
func TestIntegrationRedisPasswordFile(t *testing.T) {
	srv := redistest.Start(t, "--requirepass", "correct horse battery staple")
	withPassword := func(password string) func(*config.Config) {
		return func(c *config.Config) {
			file := filepath.Join(t.TempDir(), "redis-password")
			if err := os.WriteFile(file, []byte(password+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			c.Store.Backend = config.BackendRedis
			c.Store.Redis.Addrs = []string{srv.Addr()}
			c.Store.Redis.PasswordFile = file
			c.Store.Redis.Timeout = time.Second
		}
	}
	t.Run("ok/the password of the file", func(t *testing.T) {
		tb := newTestbed(t, withPassword("correct horse battery staple"))
		check(t, tb.decide(t, bearer(tb.mint(t, "ES256", nil)), nil), want{true, 200, ""})
	})
	t.Run("fail/a wrong password is never ready, and never shown", func(t *testing.T) {
		cfg := config.Defaults()
		cfg.DataDir = t.TempDir()
		withPassword("wrong-secret")(&cfg)
		st, err := openStore(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		time.Sleep(500 * time.Millisecond)
		if err := st.Ready(); err == nil {
			t.Fatal("ready with a wrong Redis password")
		}
		status, err := st.Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := json.Marshal(status); strings.Contains(string(b), "wrong-secret") || !strings.Contains(string(b), "WRONGPASS") {
			t.Errorf("status = %s", b)
		}
	})
}
