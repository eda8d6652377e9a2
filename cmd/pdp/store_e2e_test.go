package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readyz returns /readyz's status and body.
func (e *processEnv) readyz(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + e.addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// startFails starts pdp with args and returns its stderr once it exited,
// failing the test when it keeps running or exits 0.
func startFails(t *testing.T, e *processEnv, args ...string) string {
	t.Helper()
	p := startPDP(t, e.dir, append([]string{"serve", "--config", e.config}, args...)...)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("pdp exited 0, want a refusal\n%s", p.stderr)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("pdp did not exit")
	}
	return p.stderr.String()
}

// noPanicTrace fails when stderr holds a Go panic trace.
func noPanicTrace(t *testing.T, stderr string) {
	t.Helper()
	for _, s := range []string{"panic:", "goroutine ", "fatal error:"} {
		if strings.Contains(stderr, s) {
			t.Fatalf("stderr holds a Go panic trace (%q):\n%s", s, stderr)
		}
	}
}

// TestStoreFileDeletedUnderRunningServer: deleting pdp.db under a running
// server fails readiness and refuses revocations 503 (no 201 into the
// deleted file); the lock file still keeps a second server out; a backup
// taken from the running server and restored brings every revocation back
// after the restart, which without it is refused.
func TestStoreFileDeletedUnderRunningServer(t *testing.T) {
	e := newProcessEnv(t)
	tok, err := e.issuer.Mint(map[string]any{"aud": testAudience, "sub": "carol", "client_id": "web", "scope": "accounts:read", "iat": time.Now().Add(-time.Minute).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	p := e.start(t)
	revoke := func(sub string) error {
		_, err := pdpCLI(t, "revoke", "subject", sub, "--iss", "https://as.example.com",
			"--server", "http://"+e.addr, "--admin-token-file", e.credFile)
		return err
	}
	if err := revoke("carol"); err != nil {
		t.Fatal(err)
	}
	db := filepath.Join(e.dir, "data", "pdp.db")
	if err := os.Remove(db); err != nil {
		t.Fatal(err)
	}
	if err := revoke("dave"); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("revocation after pdp.db was deleted: err = %v, want a 503", err)
	}
	status, body := e.readyz(t)
	if status != http.StatusServiceUnavailable || strings.Contains(body, db) || !strings.Contains(body, `"checks":["store"]`) {
		t.Errorf("/readyz = %d %s, want 503 naming the store check, not the file", status, body)
	}
	if resp, err := http.Get("http://" + e.addr + "/v1/status"); err != nil {
		t.Error(err)
	} else {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"readiness":{"ready":false`) || !strings.Contains(string(b), db) {
			t.Errorf("/v1/status does not say under readiness why the store is not ready: %s", b)
		}
		var st struct{ Readiness json.RawMessage }
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		checkDocGolden(t, storeDeletedStatusGolden, st.Readiness, db, "data/pdp.db")
	}
	var problem map[string]any
	if err := json.Unmarshal([]byte(body), &problem); err != nil || problem["type"] != "https://tokenguard.dev/problems/not-ready" {
		t.Errorf("/readyz body is not a not-ready problem: %v %s", err, body)
	}
	checkDocGolden(t, storeDeletedReadyzGolden, []byte(body))
	if !strings.Contains(p.stderr.String(), `"level":"ERROR","msg":"store faulted`) || !strings.Contains(p.stderr.String(), db) {
		t.Errorf("no ERROR log naming the file:\n%s", p.stderr)
	}
	if stderr := startFails(t, e, "--listen", freeAddr(t), "--store-reset"); !strings.Contains(stderr, "in use by another pdp process") {
		t.Errorf("second server on the data dir: %s", stderr)
	}

	if resp, err := http.Get("http://" + e.addr + "/v1/admin/backup"); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("backup without the admin credential: %v %v, want 401", resp.StatusCode, err)
	} else {
		resp.Body.Close()
	}
	backup := filepath.Join(t.TempDir(), "pdp.backup")
	if out, err := pdpCLI(t, "store", "backup", backup, "--server", "http://"+e.addr, "--admin-token-file", e.credFile); err != nil {
		t.Fatalf("pdp store backup from the running server: %v\n%s", err, out)
	}
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()

	stderr := startFails(t, e)
	if !strings.Contains(stderr, "pdp.db is missing or empty") || !strings.Contains(stderr, "--store-reset") {
		t.Errorf("restart without pdp.db: %s", stderr)
	}
	noPanicTrace(t, stderr)
	if out, err := pdpCLI(t, "store", "restore", backup, "--config", e.config); err != nil {
		t.Fatalf("pdp store restore: %v\n%s", err, out)
	}
	e.start(t)
	if allow, codes := e.decide(t, tok); allow || !strings.Contains(codes, "subject_revoked") {
		t.Errorf("after restore: allow=%v %s, want subject_revoked", allow, codes)
	}
}

// The answers docs/operations.md quotes for a deleted pdp.db.
var (
	storeDeletedReadyzGolden = docGolden("readyz-store-deleted.json", "TestStoreFileDeletedUnderRunningServer")
	storeDeletedStatusGolden = docGolden("status-readiness-store-deleted.json", "TestStoreFileDeletedUnderRunningServer")
)

// TestStoreDamagedAtStart: a corrupt, truncated or emptied pdp.db refuses
// the start with what to do, never a panic trace; an emptied one starts
// with --store-reset.
func TestStoreDamagedAtStart(t *testing.T) {
	cases := []struct {
		name   string
		damage func(path string) error
		want   string
	}{
		{"fail/truncated", func(p string) error {
			fi, err := os.Stat(p)
			if err != nil {
				return err
			}
			return os.Truncate(p, fi.Size()/2)
		}, "is corrupt"},
		{"fail/data pages overwritten", func(p string) error {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for i := 2 * 4096; i < len(b); i++ {
				b[i] ^= 0xA5
			}
			return os.WriteFile(p, b, 0o600)
		}, "is corrupt"},
		{"fail/0 bytes", func(p string) error { return os.Truncate(p, 0) }, "--store-reset"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			e := newProcessEnv(t)
			p := e.start(t)
			if _, err := pdpCLI(t, "revoke", "subject", "carol", "--iss", "https://as.example.com",
				"--server", "http://"+e.addr, "--admin-token-file", e.credFile); err != nil {
				t.Fatal(err)
			}
			_ = p.cmd.Process.Kill()
			_ = p.cmd.Wait()
			db := filepath.Join(e.dir, "data", "pdp.db")
			if err := tt.damage(db); err != nil {
				t.Fatal(err)
			}
			stderr := startFails(t, e)
			noPanicTrace(t, stderr)
			if !strings.Contains(stderr, tt.want) || !strings.Contains(stderr, db) {
				t.Errorf("stderr = %s, want %q naming %s", stderr, tt.want, db)
			}
			if tt.want == "is corrupt" && !strings.Contains(stderr, "restore a backup (pdp store restore) or move it away") {
				t.Errorf("stderr does not say what to do: %s", stderr)
			}
		})
	}
	t.Run("ok/0 bytes with --store-reset starts empty", func(t *testing.T) {
		e := newProcessEnv(t)
		p := e.start(t)
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		if err := os.Truncate(filepath.Join(e.dir, "data", "pdp.db"), 0); err != nil {
			t.Fatal(err)
		}
		p = startPDP(t, e.dir, "serve", "--config", e.config, "--store-reset")
		for range 1000 {
			if resp, err := http.Get("http://" + e.addr + "/readyz"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == 200 {
					return
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatalf("pdp --store-reset never became ready\n%s", p.stderr)
	})
}
