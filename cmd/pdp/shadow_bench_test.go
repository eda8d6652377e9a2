package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/tokenguard/pdp/internal/config"
)

// BenchmarkDecideShadow measures POST /v1/decide with every decision
// evaluated (no reuse, no decision logs) without and with a shadow policy
// (the shipped one again, so every compared decision agrees): the cost of
// the hand-off on the answer path, and of the shadow's CPU beside it. It
// reports the share of decisions the shadow evaluated and skipped.
func BenchmarkDecideShadow(b *testing.B) {
	off := func(c *config.Config) {
		c.DecisionCache.MaxEntries = 0
		c.DecisionLogs.Console = false
	}
	b.Run("shadow=off", func(b *testing.B) { benchmarkDecideShadow(b, off) })
	for _, sample := range []float64{1, 0.1} {
		name := "shadow=on/sample=1"
		if sample < 1 {
			name = "shadow=on/sample=0.1"
		}
		b.Run(name, func(b *testing.B) {
			benchmarkDecideShadow(b, func(c *config.Config) {
				off(c)
				c.Policy.Shadow.Dir = "../../rego"
				c.Policy.Shadow.SampleRate = sample
			})
		})
	}
}

func benchmarkDecideShadow(b *testing.B, mutate func(*config.Config)) {
	tb := newTestbed(b, mutate)
	body, _ := json.Marshal(map[string]any{"request": map[string]any{
		"method": "GET", "url": "https://api.example.com/v1/accounts/42",
		"headers": map[string]any{"authorization": "Bearer " + tb.mint(b, "ES256", nil), "user-agent": "bench/1"}, "remote_ip": "203.0.113.7",
	}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
	url := tb.pdp.URL + "/v1/decide"
	before := metricsSnapshot(b, tb)
	b.ReportAllocs()
	for b.Loop() {
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.StopTimer()
	after := metricsSnapshot(b, tb)
	n := float64(b.N)
	b.ReportMetric((after["agree"]-before["agree"])/n, "shadowed/op")
	b.ReportMetric((after["skipped"]-before["skipped"])/n, "skipped/op")
}

// metricsSnapshot reads pdp_shadow_decisions_total by result.
func metricsSnapshot(b *testing.B, tb *testbed) map[string]float64 {
	b.Helper()
	resp, err := http.Get(tb.pdp.URL + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := map[string]float64{}
	for _, line := range bytes.Split(raw, []byte("\n")) {
		for _, result := range []string{"agree", "disagree", "skipped", "error"} {
			prefix := []byte(`pdp_shadow_decisions_total{result="` + result + `"} `)
			if v, ok := bytes.CutPrefix(line, prefix); ok {
				var f float64
				_ = json.Unmarshal(v, &f)
				out[result] = f
			}
		}
	}
	return out
}
