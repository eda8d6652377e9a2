package store

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Following Redis through a failover.
//
// A cluster client routes each key to the master its slot map names, and
// reloads that map on a MOVED or ASK reply, or when it is older than its
// reload interval. A master that died answers neither: it gives connection
// errors and timeouts only, so without help the client keeps calling it
// until the interval ends, long after a replica was promoted. A Sentinel
// client learns the new master from the Sentinels, but its connection pool
// stops dialling after a burst of failed dials and probes only once a
// second, so it too comes to the promoted replica late (see sentinelWatch).
//
// topology watches every call: a connection error, a timeout or a "not
// now" reply (CLUSTERDOWN, TRYAGAIN, ...) asks for the topology at once
// (the slot map, or the Sentinels' master), and again every reloadEvery
// while such errors last, so that a promoted replica is used within a
// reload or two of its promotion.
const (
	// clusterReloadEvery is the shortest pause between two reloads of the
	// topology, and the polling period while errors last.
	clusterReloadEvery = 250 * time.Millisecond
	// clusterErrorsLast is how long after the last error the topology is
	// still polled.
	clusterErrorsLast = 2 * time.Second
	// clusterReloadInterval bounds how stale the slot map gets without
	// errors (a planned failover or resharding is followed by MOVED
	// replies anyway).
	clusterReloadInterval = 10 * time.Second
)

// topology reloads a client's view of the servers on errors; it is a
// redis.Hook of that client.
type topology struct {
	// reload asks for the topology; it must not block the caller.
	reload     func()
	lastError  atomic.Int64 // unix ns of the last failed call
	lastReload atomic.Int64 // unix ns of the last reload asked for
	reloads    atomic.Int64
}

var _ redis.Hook = (*topology)(nil)

// clusterTopology reloads c's slot map.
func clusterTopology(c *redis.ClusterClient) *topology {
	// Asynchronous: the map is loaded from the first node that answers.
	return &topology{reload: func() { c.ReloadState(context.Background()) }}
}

// run polls the slot map while errors last, until ctx ends.
func (t *topology) run(ctx context.Context) {
	tick := time.NewTicker(clusterReloadEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			if now.UnixNano()-t.lastError.Load() < int64(clusterErrorsLast) {
				t.ask(now)
			}
		}
	}
}

// failed notes a failed call and reloads the topology, at most once per
// clusterReloadEvery.
func (t *topology) failed() {
	now := time.Now()
	t.lastError.Store(now.UnixNano())
	t.ask(now)
}

func (t *topology) ask(now time.Time) {
	last := t.lastReload.Load()
	if now.UnixNano()-last < int64(clusterReloadEvery) || !t.lastReload.CompareAndSwap(last, now.UnixNano()) {
		return
	}
	t.reloads.Add(1)
	t.reload()
}

// topologyError reports errors that may mean the topology is out of date:
// the node could not be reached or did not answer in time, or it answered
// that the cluster is failing over. The caller's own cancellation, a
// missing key and script or data errors do not.
func topologyError(err error) bool {
	switch {
	case err == nil, errors.Is(err, redis.Nil), errors.Is(err, context.Canceled):
		return false
	case errors.Is(err, context.DeadlineExceeded):
		return true
	}
	var nerr net.Error
	if errors.As(err, &nerr) {
		return true
	}
	var rerr redis.Error
	if errors.As(err, &rerr) {
		return transientReply(rerr.Error())
	}
	return true // io.EOF, a closed pool, a refused connection
}

// DialHook passes dials through: a failed dial fails the command that
// needed it, which ProcessHook sees.
func (t *topology) DialHook(next redis.DialHook) redis.DialHook { return next }

func (t *topology) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if topologyError(err) {
			t.failed()
		}
		return err
	}
}

func (t *topology) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		err := next(ctx, cmds)
		if topologyError(err) {
			t.failed()
		}
		return err
	}
}
