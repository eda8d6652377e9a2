package store

import (
	"context"
	"net"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Following a Sentinel failover.
//
// The Sentinel client asks the Sentinels for the master each time it dials,
// so it finds a promoted replica by itself, except that its connection pool
// stops dialling after a burst of failed dials (one per pool slot) and then
// probes once a second: under load the promoted master is used a second or
// more after the Sentinels name it. sentinelWatch asks the Sentinels for the
// master when calls fail (topology calls kick), and when a majority of the
// configured Sentinels name a master other than the one the client in use
// was built for, it replaces the client with a fresh one, whose pool dials
// the new master at once. The old client is closed once the calls that
// started on it are over.
type sentinelWatch struct {
	s         *Shared
	sentinels []*redis.SentinelClient
	kickC     chan struct{}
	// swaps counts the clients replaced.
	swaps atomic.Int64

	// Owned by run:
	master  string // the master the client in use was built for; "" until known
	retired []retiredClient
}

type retiredClient struct {
	client  redis.UniversalClient
	closeAt time.Time
}

func newSentinelWatch(s *Shared) *sentinelWatch {
	w := &sentinelWatch{s: s, kickC: make(chan struct{}, 1)}
	for _, addr := range s.opts.Addrs {
		w.sentinels = append(w.sentinels, redis.NewSentinelClient(&redis.Options{
			Addr:                  addr,
			TLSConfig:             s.opts.TLS,
			DialTimeout:           max(s.opts.Timeout, 500*time.Millisecond),
			ReadTimeout:           s.opts.Timeout,
			WriteTimeout:          s.opts.Timeout,
			ContextTimeoutEnabled: true,
			MaxRetries:            -1,
			DialerRetries:         1,
			PoolSize:              2,
			DisableIdentity:       true,
		}))
	}
	return w
}

// kick asks run to check the master; it never blocks.
func (w *sentinelWatch) kick() {
	select {
	case w.kickC <- struct{}{}:
	default:
	}
}

// run learns the master, then checks it when kicked, until ctx ends; it
// closes the retired clients and the Sentinel connections on its way out.
func (w *sentinelWatch) run(ctx context.Context) {
	defer func() {
		for _, r := range w.retired {
			_ = r.client.Close()
		}
		for _, c := range w.sentinels {
			_ = c.Close()
		}
	}()
	w.check(ctx)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.kickC:
			w.check(ctx)
		case now := <-tick.C:
			w.closeRetired(now)
		}
	}
}

// check replaces the client when the Sentinels agree on a master other
// than the one it was built for.
func (w *sentinelWatch) check(ctx context.Context) {
	addr, ok := w.agreed(ctx)
	if !ok || addr == w.master {
		return
	}
	if w.master == "" { // the client in use asked the same Sentinels
		w.master = addr
		return
	}
	old := w.master
	w.master = addr
	fresh, _ := newRedisClient(w.s.opts)
	fresh.AddHook(w.s.topology)
	prev := w.s.client.Swap(&redisClient{fresh})
	// The follower's blocking read is the longest call.
	grace := w.s.opts.BlockFor + w.s.opts.Timeout + time.Second
	w.retired = append(w.retired, retiredClient{client: prev.UniversalClient, closeAt: time.Now().Add(grace)})
	w.swaps.Add(1)
	w.s.opts.Logger.Warn("store: the Sentinels name a new Redis master, reconnecting",
		"master_name", w.s.opts.MasterName, "from", old, "to", addr)
}

func (w *sentinelWatch) closeRetired(now time.Time) {
	kept := w.retired[:0]
	for _, r := range w.retired {
		if now.Before(r.closeAt) {
			kept = append(kept, r)
			continue
		}
		_ = r.client.Close()
	}
	w.retired = kept
}

// agreed asks every configured Sentinel for the master's address and
// returns the one a majority of them name, as soon as they have.
func (w *sentinelWatch) agreed(ctx context.Context) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, max(w.s.opts.Timeout, 500*time.Millisecond))
	defer cancel()
	answers := make(chan string, len(w.sentinels))
	for _, c := range w.sentinels {
		go func() {
			var addr string
			if r, err := c.GetMasterAddrByName(ctx, w.s.opts.MasterName).Result(); err == nil && len(r) == 2 {
				addr = net.JoinHostPort(r[0], r[1])
			}
			answers <- addr
		}()
	}
	votes := make(map[string]int)
	for range w.sentinels {
		addr := <-answers
		if addr == "" {
			continue
		}
		if votes[addr]++; votes[addr] > len(w.sentinels)/2 {
			return addr, true
		}
	}
	return "", false
}
