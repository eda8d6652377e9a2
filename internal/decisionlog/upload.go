package decisionlog

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/util"
)

// chunkBytes bounds the uncompressed events of one upload; a larger
// buffer goes in several requests.
const chunkBytes = 1 << 20

// uploader sends events to the remote decision-log service as OPA's
// decision-log plugin does: gzip'ed JSON arrays POSTed to the service's
// resource, every min..max upload delay, with exponential backoff after
// a failure. Events wait in a buffer bounded in bytes; past the bound the
// oldest are dropped.
type uploader struct {
	client     *http.Client
	url        string
	credential string
	min, max   time.Duration
	limit      int64

	mu     sync.Mutex
	events [][]byte
	bytes  int64

	// sending serialises uploads (the timer's, Flush's and Stop's).
	sending sync.Mutex
	kick    chan struct{}
	failing atomic.Bool
	// dropped counts events dropped because the buffer was full.
	dropped *atomic.Uint64
	log     *slog.Logger
}

func newUploader(url, credential string, min, max time.Duration, limit int64, dropped *atomic.Uint64, log *slog.Logger) *uploader {
	return &uploader{
		client: &http.Client{
			Timeout: 30 * time.Second,
			Transport: &http.Transport{
				Proxy:                 http.ProxyFromEnvironment,
				ResponseHeaderTimeout: 10 * time.Second,
				TLSHandshakeTimeout:   10 * time.Second,
				IdleConnTimeout:       90 * time.Second,
				ForceAttemptHTTP2:     true,
			},
		},
		url: url, credential: credential, min: min, max: max, limit: limit,
		kick: make(chan struct{}, 1), dropped: dropped, log: log,
	}
}

// add buffers one encoded event, dropping the oldest past the limit.
func (u *uploader) add(ev []byte) {
	u.mu.Lock()
	u.events = append(u.events, ev)
	u.bytes += int64(len(ev))
	u.trim()
	full := u.bytes >= chunkBytes
	u.mu.Unlock()
	if full {
		select {
		case u.kick <- struct{}{}:
		default:
		}
	}
}

// trim drops the oldest events until the buffer is within its limit.
func (u *uploader) trim() {
	n := 0
	for u.bytes > u.limit && n < len(u.events) {
		u.bytes -= int64(len(u.events[n]))
		u.events[n] = nil
		n++
	}
	if n > 0 {
		u.events = u.events[n:]
		u.dropped.Add(uint64(n))
	}
}

func (u *uploader) buffered() int64 {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.bytes
}

// run uploads on a timer until ctx ends.
func (u *uploader) run(ctx context.Context) {
	retries := 0
	for {
		var delay time.Duration
		if retries == 0 {
			delay = u.min
			if u.max > u.min {
				delay += rand.N(u.max - u.min)
			}
		} else {
			delay = util.DefaultBackoff(float64(u.min), float64(u.max), retries)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-u.kick:
			t.Stop()
		case <-t.C:
		}
		if err := u.upload(ctx); err != nil {
			if ctx.Err() == nil {
				u.log.Warn("decision logs not uploaded; retrying", "error", err, "buffered_bytes", u.buffered())
			}
			retries++
		} else {
			retries = 0
		}
	}
}

// upload sends everything buffered now, in chunks. What could not be
// sent goes back to the front of the buffer.
func (u *uploader) upload(ctx context.Context) error {
	u.sending.Lock()
	defer u.sending.Unlock()
	u.mu.Lock()
	events := u.events
	u.events, u.bytes = nil, 0
	u.mu.Unlock()
	for len(events) > 0 {
		n, size := 0, 0
		for n < len(events) && (n == 0 || size+len(events[n]) <= chunkBytes) {
			size += len(events[n])
			n++
		}
		if err := u.post(ctx, events[:n]); err != nil {
			u.failing.Store(true)
			u.requeue(events)
			return err
		}
		events = events[n:]
	}
	u.failing.Store(false)
	return nil
}

// requeue puts events that were not sent before those added meanwhile.
func (u *uploader) requeue(events [][]byte) {
	u.mu.Lock()
	defer u.mu.Unlock()
	var size int64
	for _, e := range events {
		size += int64(len(e))
	}
	u.events = append(events[:len(events):len(events)], u.events...)
	u.bytes += size
	u.trim()
}

// post sends one gzip'ed JSON array of events.
func (u *uploader) post(ctx context.Context, events [][]byte) error {
	var body bytes.Buffer
	zw := gzip.NewWriter(&body)
	_, _ = zw.Write([]byte{'['})
	for i, e := range events {
		if i > 0 {
			_, _ = zw.Write([]byte{','})
		}
		_, _ = zw.Write(e)
	}
	_, _ = zw.Write([]byte{']'})
	if err := zw.Close(); err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.url, &body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Content-Encoding", "gzip")
	if u.credential != "" {
		req.Header.Set("Authorization", "Bearer "+u.credential)
	}
	resp, err := u.client.Do(req)
	if err != nil {
		return fmt.Errorf("decision log upload: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return errors.New("decision log upload: the service answered " + resp.Status)
	}
	return nil
}
