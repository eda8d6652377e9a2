package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// The herd scenario: a cold replica offered the warm maximum rate the moment
// it is ready, as a replica started (or restarted) behind a load balancer
// under full load is. It reports, per second, what the clients were
// answered, and how long it took to reach the steady state: every second
// from then on answered only allows, with the p99 within --max-p99.

// herdAnswers are the answer kinds counted, in the table's order: the
// status a gateway would give the client (the decision's status for an
// answered decision), and "error" for a request that got no answer.
var herdAnswers = []string{"200", "401", "403", "503", "500", "other", "error"}

// herdSecond is one second of the herd run.
type herdSecond struct {
	Answers map[string]int
	P99     time.Duration
}

// herdResult is what the herd scenario measured on one peer.
type herdResult struct {
	Peer    string
	Rate    float64
	Seconds []herdSecond
	// Steady is when the steady state began, from the first request; -1
	// when it was not reached.
	Steady time.Duration
	Totals map[string]int
}

// herd starts p cold and offers rate at once for duration, counting the
// answers second by second.
func herd(ctx context.Context, env *runEnv, p peer, sc scenario, rate float64, duration time.Duration) (herdResult, error) {
	res := herdResult{Peer: p.Name(), Rate: rate, Steady: -1, Totals: map[string]int{}}
	dir := filepath.Join(env.dir, sc.Name+"-"+slug(p.Name()))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return res, err
	}
	w, err := newWorkload(env.issuer, scenario{Name: "warm"})
	if err != nil {
		return res, err
	}
	srv, err := p.Start(ctx, env, sc, dir)
	if err != nil {
		return res, err
	}
	defer srv.stop()
	// No warm-up: the first request comes the moment the replica is ready.
	targets, err := targetsFor(p, srv, w, warmTokens)
	if err != nil {
		return res, err
	}
	var next atomic.Uint64
	targeter := func(t *vegeta.Target) error {
		*t = targets[(next.Add(1)-1)%uint64(len(targets))]
		return nil
	}
	atk := vegeta.NewAttacker(vegeta.Timeout(5*time.Second), vegeta.Workers(64), vegeta.MaxWorkers(1024),
		vegeta.KeepAlive(true), vegeta.Connections(1024), vegeta.HTTP2(false), vegeta.Redirects(vegeta.NoFollow))
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	secs := int(math.Ceil(duration.Seconds()))
	answers := make([]map[string]int, secs)
	lat := make([][]time.Duration, secs)
	for i := range answers {
		answers[i] = map[string]int{}
	}
	start := time.Now()
	for r := range atk.Attack(targeter, vegeta.ConstantPacer{Freq: int(rate), Per: time.Second}, duration, "herd") {
		// The second the request was sent in (a loaded generator falls
		// behind the intended schedule; the answers are what counts here).
		s := min(max(int(r.Timestamp.Sub(start)/time.Second), 0), secs-1)
		kind := herdKind(r)
		answers[s][kind]++
		res.Totals[kind]++
		lat[s] = append(lat[s], r.Latency)
	}
	if err := ctx.Err(); err != nil {
		return res, err
	}
	steadyFrom := secs
	for s := secs - 1; s >= 0; s-- {
		p99 := summarize(lat[s]).P99
		res.Seconds = append(res.Seconds, herdSecond{Answers: answers[s], P99: p99})
		if steadyFrom == s+1 && answers[s]["200"] > 0 && answers[s]["200"] == len(lat[s]) && p99 <= env.opts.MaxP99 {
			steadyFrom = s
		}
	}
	slices.Reverse(res.Seconds)
	if steadyFrom < secs {
		res.Steady = time.Duration(steadyFrom) * time.Second
	}
	return res, nil
}

// herdKind is the answer a client got for one request.
func herdKind(r *vegeta.Result) string {
	switch {
	case r.Error != "" || r.Code == 0:
		return "error"
	case r.Code != 200:
		return statusKind(int(r.Code))
	}
	var d struct {
		Allow  bool `json:"allow"`
		Status int  `json:"status"`
	}
	if json.Unmarshal(r.Body, &d) != nil {
		return "other"
	}
	if d.Allow {
		return "200"
	}
	return statusKind(d.Status)
}

func statusKind(status int) string {
	k := strconv.Itoa(status)
	if slices.Contains(herdAnswers, k) {
		return k
	}
	return "other"
}

// renderHerd is the herd section of the report.
func renderHerd(m machine, results []herdResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s.\n\n", m)
	for _, r := range results {
		steady := "not reached"
		if r.Steady >= 0 {
			steady = fmt.Sprintf("%.0f s", r.Steady.Seconds())
		}
		fmt.Fprintf(&b, "Herd, %s: a cold replica offered %.0f decisions/s from the moment it is ready. Steady state (only allows, p99 within the limit, to the end) after %s.\n\n", r.Peer, r.Rate, steady)
		b.WriteString("| second |")
		for _, k := range herdAnswers {
			fmt.Fprintf(&b, " %s |", k)
		}
		b.WriteString(" p99 |\n|---:|")
		for range herdAnswers {
			b.WriteString("---:|")
		}
		b.WriteString("---:|\n")
		for i, s := range r.Seconds {
			fmt.Fprintf(&b, "| %d |", i+1)
			for _, k := range herdAnswers {
				fmt.Fprintf(&b, " %d |", s.Answers[k])
			}
			fmt.Fprintf(&b, " %s |\n", ms(s.P99))
		}
		b.WriteString("| total |")
		for _, k := range herdAnswers {
			fmt.Fprintf(&b, " %d |", r.Totals[k])
		}
		b.WriteString(" |\n\n")
	}
	return b.String()
}
