package httpapi

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/tokenguard/pdp/internal/store"
)

// A second backup while one is being sent is refused with 429 and
// Retry-After: each holds a snapshot the size of the store.
func TestSecondConcurrentBackupIs429(t *testing.T) {
	st, err := store.OpenBolt(t.TempDir(), store.BoltOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	r := chi.NewRouter()
	mountAdmin(r, Admin{Credential: "c", Store: st, RevocationTTL: time.Hour, Backup: st}, slog.New(slog.DiscardHandler), nil)
	srv := httptest.NewServer(r)
	defer srv.Close()
	get := func(ctx context.Context) (*http.Response, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v1/admin/backup", nil)
		req.Header.Set("Authorization", "Bearer c")
		return http.DefaultClient.Do(req)
	}

	// The first backup is held open by a writer that blocks.
	block := make(chan struct{})
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := st.Backup(context.Background(), blockingWriter{started: started, block: block}, nil)
		done <- err
	}()
	<-started
	resp, err := get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" ||
		resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Errorf("a backup while another is taken: %d, Retry-After %q, %s; want 429 problem with Retry-After",
			resp.StatusCode, resp.Header.Get("Retry-After"), resp.Header.Get("Content-Type"))
	}
	close(block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	resp, err = get(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.ContentLength <= 0 {
		t.Errorf("a backup after the first ended: %d, length %d; want 200 with a length", resp.StatusCode, resp.ContentLength)
	}
}

type blockingWriter struct{ started, block chan struct{} }

func (w blockingWriter) Write(p []byte) (int, error) {
	select {
	case <-w.started:
	default:
		close(w.started)
	}
	<-w.block
	return len(p), nil
}
