package metrics

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tokenguard/pdp/internal/store"
)

// storeStatsTimeout bounds one Stats call made by a scrape.
const storeStatsTimeout = 5 * time.Second

// defaultStoreStatsMaxAge is how long one Stats answer serves scrapes.
const defaultStoreStatsMaxAge = 10 * time.Second

// storeCollector reports the store sizes at scrape time. Counting walks
// every bucket, so one answer serves the scrapes of maxAge, and concurrent
// scrapes share one call.
type storeCollector struct {
	stats  func(ctx context.Context) (store.Stats, error)
	maxAge time.Duration

	up, revocations, fingerprints, dpopJTIs, setJTIs, families, familyTokens, size *prometheus.Desc

	mu   sync.Mutex
	last store.Stats
	err  error
	at   time.Time
}

func newStoreCollector(stats func(ctx context.Context) (store.Stats, error), maxAge time.Duration) *storeCollector {
	if maxAge == 0 {
		maxAge = defaultStoreStatsMaxAge
	}
	return &storeCollector{
		stats:  stats,
		maxAge: maxAge,
		up: prometheus.NewDesc("pdp_store_up",
			"Whether the state store answered the last size query (1) or not (0).", nil, nil),
		revocations: prometheus.NewDesc("pdp_store_revocations",
			"Revocations held, by kind (jti, subject, session, client); expired ones until swept.", []string{"kind"}, nil),
		fingerprints: prometheus.NewDesc("pdp_store_fingerprints",
			"Bearer-token fingerprints (last sightings) held.", nil, nil),
		dpopJTIs: prometheus.NewDesc("pdp_store_dpop_jtis",
			"Spent DPoP proof ids remembered against replay.", nil, nil),
		setJTIs: prometheus.NewDesc("pdp_store_set_jtis",
			"Applied security event tokens remembered against replays (this replica's bbolt).", nil, nil),
		families: prometheus.NewDesc("pdp_store_refresh_families",
			"Refresh-token families held.", nil, nil),
		familyTokens: prometheus.NewDesc("pdp_store_refresh_family_tokens",
			"Refresh-token hashes held, current and rotated out.", nil, nil),
		size: prometheus.NewDesc("pdp_store_size_bytes",
			"Size of the state file.", nil, nil),
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.revocations, c.fingerprints, c.dpopJTIs, c.setJTIs, c.families, c.familyTokens, c.size} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.get()
	if err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	kinds := make([]string, 0, len(st.Revocations))
	for k := range st.Revocations {
		kinds = append(kinds, string(k))
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		ch <- prometheus.MustNewConstMetric(c.revocations, prometheus.GaugeValue, float64(st.Revocations[store.Kind(k)]), k)
	}
	ch <- prometheus.MustNewConstMetric(c.fingerprints, prometheus.GaugeValue, float64(st.Fingerprints))
	ch <- prometheus.MustNewConstMetric(c.dpopJTIs, prometheus.GaugeValue, float64(st.DPoPJTIs))
	ch <- prometheus.MustNewConstMetric(c.setJTIs, prometheus.GaugeValue, float64(st.SETJTIs))
	ch <- prometheus.MustNewConstMetric(c.families, prometheus.GaugeValue, float64(st.Families))
	ch <- prometheus.MustNewConstMetric(c.familyTokens, prometheus.GaugeValue, float64(st.FamilyTokens))
	if st.SizeBytes > 0 {
		ch <- prometheus.MustNewConstMetric(c.size, prometheus.GaugeValue, float64(st.SizeBytes))
	}
}

// get returns a fresh enough answer, asking the store when there is none.
// Holding the lock during the call makes concurrent scrapes share it.
func (c *storeCollector) get() (store.Stats, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.at.IsZero() && c.maxAge > 0 && time.Since(c.at) < c.maxAge {
		return c.last, c.err
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeStatsTimeout)
	defer cancel()
	c.last, c.err = c.stats(ctx)
	c.at = time.Now()
	return c.last, c.err
}
