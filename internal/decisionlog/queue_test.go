package decisionlog

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenguard/pdp/internal/config"
)

// blockedWriter holds every write until it is released.
type blockedWriter struct {
	release chan struct{}
	once    sync.Once
	syncBuffer
}

func (w *blockedWriter) Write(p []byte) (int, error) {
	<-w.release
	return w.syncBuffer.Write(p)
}

func (w *blockedWriter) open() { w.once.Do(func() { close(w.release) }) }

func TestLogNeverWaitsForAFullQueue(t *testing.T) {
	w := &blockedWriter{release: make(chan struct{})}
	l, err := New(context.Background(), config.DecisionLogs{Console: true, SampleRate: 1, Queue: 4}, Options{Console: w})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.open(); l.Stop(context.Background()) })
	const n = 50
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			l.Log(context.Background(), Entry{Decision: deny(t)})
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Log waited for the console")
	}
	// The writer holds at most one batch; the queue 4 more.
	s := l.Status()
	if s.QueueFull < n-4-1-4 {
		t.Errorf("queue_full = %d of %d entries, want most of them dropped", s.QueueFull, n)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(l.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			counts[mf.GetName()+"/"+m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	if counts["pdp_decision_logs_dropped_total/queue_full"] != float64(s.QueueFull) || len(counts) != 2 {
		t.Errorf("metrics = %v, want queue_full %d", counts, s.QueueFull)
	}
	w.open()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if got := len(w.lines(t, "Decision Log")); uint64(got)+l.Status().QueueFull != n {
		t.Errorf("written %d + dropped %d != %d logged", got, l.Status().QueueFull, n)
	}
}

func TestConsoleLines(t *testing.T) {
	t.Run("ok/json: one object per line with the event's members", func(t *testing.T) {
		buf := &syncBuffer{}
		l, err := New(context.Background(), config.DecisionLogs{Console: true, SampleRate: 1}, Options{Console: buf, Labels: map[string]string{"env": "t"}})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Stop(context.Background())
		d := allow(t)
		l.Log(context.Background(), Entry{Decision: d, Latency: 2 * time.Millisecond})
		if err := l.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		if strings.Count(out, "\n") != 1 {
			t.Fatalf("want one line, got %q", out)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(out), &ev); err != nil {
			t.Fatalf("not one JSON object: %v", err)
		}
		for _, k := range []string{"time", "level", "msg", "labels", "decision_id", "path", "input", "result", "timestamp", "metrics", "custom", "bundles"} {
			if _, ok := ev[k]; !ok {
				t.Errorf("member %s missing: %s", k, out)
			}
		}
		if m, _ := ev["metrics"].(map[string]any); m["timer_server_handler_ns"] != float64(2*time.Millisecond) {
			t.Errorf("metrics = %v", ev["metrics"])
		}
		if r, _ := ev["result"].(map[string]any); r["decision_id"] != d.ID || r["allow"] != true {
			t.Errorf("result = %v", ev["result"])
		}
		if _, err := time.Parse(time.RFC3339Nano, ev["timestamp"].(string)); err != nil {
			t.Errorf("timestamp: %v", err)
		}
		assertNoSecrets(t, "console", out)
	})
	t.Run("ok/text: the event is one JSON attribute", func(t *testing.T) {
		buf := &syncBuffer{}
		l, err := New(context.Background(), config.DecisionLogs{Console: true, SampleRate: 1}, Options{Console: buf, Format: "text"})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Stop(context.Background())
		d := deny(t)
		l.Log(context.Background(), Entry{Decision: d})
		if err := l.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		line := strings.TrimSuffix(buf.String(), "\n")
		if !strings.Contains(line, ` level=INFO msg="Decision Log" decision_id=`+d.ID+" event={") {
			t.Fatalf("line = %q", line)
		}
		var ev map[string]any
		if err := json.Unmarshal([]byte(line[strings.Index(line, "event=")+len("event="):]), &ev); err != nil || ev["decision_id"] != d.ID {
			t.Errorf("event attribute: %v, %v", err, ev)
		}
		assertNoSecrets(t, "console", line)
	})
}

func TestUploadRetriesAndBoundsItsBuffer(t *testing.T) {
	var fail atomic.Bool
	fail.Store(true)
	var mu sync.Mutex
	got := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fail.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		mu.Lock()
		got++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	one, _ := newEncoder(nil).appendEvent(nil, record{dec: deny(t), ts: time.Now()})
	// Room for about three events.
	l, err := New(context.Background(), config.DecisionLogs{URL: srv.URL + "/logs", SampleRate: 1},
		Options{BufferBytes: int64(3*len(one) + len(one)/2), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Stop(context.Background()) })
	ctx := context.Background()
	for range 5 {
		l.Log(ctx, Entry{Decision: deny(t)})
	}
	if err := l.Flush(ctx); err == nil {
		t.Fatal("flush to a failing service succeeded")
	}
	s := l.Status()
	if s.State != "ERROR" || s.BufferFull != 2 || s.Buffered > int64(3*len(one)+len(one)/2) {
		t.Errorf("status after a failed upload = %+v", s)
	}
	fail.Store(false)
	if err := l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if s := l.Status(); s.State != "OK" || s.Buffered != 0 {
		t.Errorf("status after the retry = %+v", s)
	}
	mu.Lock()
	defer mu.Unlock()
	if got != 1 {
		t.Errorf("uploads = %d, want the three kept events in one", got)
	}
}
