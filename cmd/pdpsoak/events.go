package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tokenguard/pdp/internal/devissuer"
)

// run drives the traffic and the events for the configured duration, with
// a kill -9 and restart in the middle, then checks every acknowledged
// revocation. *srv is replaced by the restarted process.
func (s *soak) run(ctx context.Context, srv **server) (*result, error) {
	if err := s.prepare(); err != nil {
		return nil, err
	}
	res := &result{steadyAfter: s.o.FreshTTL + time.Minute}
	started := time.Now() // when the pdp serving now was started
	// readings are the RSS read (every second) since the last sample, of
	// the pdp serving now.
	var readings []reading
	watchRSS := func() {
		if v, err := readRSS((*srv).pid()); err == nil {
			readings = append(readings, reading{up: time.Since(started), mib: v})
		}
	}
	sample := func(label string) {
		smp, err := s.sample(label, (*srv).pid())
		smp.up = time.Since(started)
		if err == nil {
			readings = append(readings, reading{up: smp.up, mib: smp.rssMiB})
		}
		smp.peakMiB, smp.medianMiB, smp.settled = window(readings, res.steadyAfter)
		readings = readings[:0]
		if err != nil {
			s.log.Warn("sampling the pdp", "error", err)
			return
		}
		res.samples = append(res.samples, smp)
	}
	runCtx, cancel := context.WithTimeout(ctx, s.o.Duration)
	defer cancel()
	trafficDone := make(chan struct{})
	go func() {
		s.traffic(runCtx)
		close(trafficDone)
	}()
	start := time.Now()
	s.cold.Store(true)
	time.AfterFunc(coldStart, func() { s.cold.Store(false) })
	s.counts.mu.Lock()
	s.counts.start = start
	s.counts.mu.Unlock()
	half := time.After(s.o.Duration / 2)
	revokeT, setT, editT, sampleT := time.NewTicker(revokeEvery), time.NewTicker(setEvery), time.NewTicker(editEvery), time.NewTicker(sampleEvery)
	rssT := time.NewTicker(time.Second)
	defer func() { revokeT.Stop(); setT.Stop(); editT.Stop(); sampleT.Stop(); rssT.Stop() }()
	firstSample := time.After(10 * time.Second)
	var n int
loop:
	for {
		select {
		case <-runCtx.Done():
			break loop
		case <-firstSample:
			sample("start (+10 s)")
		case <-sampleT.C:
			sample(fmt.Sprintf("+%s", time.Since(start).Round(time.Second)))
		case <-rssT.C:
			watchRSS()
		case <-revokeT.C:
			n++
			s.revokeByAdmin(runCtx, n)
		case <-setT.C:
			n++
			s.revokeBySET(runCtx, n)
		case <-editT.C:
			s.edit(runCtx)
		case <-half:
			sample("middle, before kill -9")
			s.cold.Store(true)
			killed := time.Now()
			(*srv).kill()
			restarted, err := s.env.start(ctx)
			if err != nil {
				return nil, fmt.Errorf("restarting after kill -9: %w", err)
			}
			*srv = restarted
			started, readings = time.Now(), readings[:0]
			res.restartWindow = time.Since(killed)
			time.AfterFunc(coldStart, func() { s.cold.Store(false) })
			s.log.Info("killed and restarted", "ready_after", res.restartWindow.Round(time.Millisecond))
		}
	}
	<-trafficDone
	sample("end")
	res.elapsed = time.Since(start)
	res.lost, res.checked = s.checkRevocations(ctx)
	s.counts.mu.Lock()
	res.counts = &s.counts
	return res, nil
}

// revokeByAdmin mints a token for a new subject, revokes the subject
// through the admin API and, on 201, remembers it.
func (s *soak) revokeByAdmin(ctx context.Context, n int) {
	sub := fmt.Sprintf("admin-revoked-%d", n)
	tok, final, err := s.mintBefore(sub)
	if err != nil {
		s.log.Error("minting", "error", err)
		return
	}
	body, _ := json.Marshal(map[string]any{"kind": "subject", "iss": issuerURL, "value": sub, "reason": "soak"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.env.addr+"/v1/admin/revocations", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+s.env.adminToken)
	status := s.call(req)
	s.acknowledged(status == http.StatusCreated, &s.counts.admin, revoked{sub: sub, token: tok, final: final, via: "admin API"})
}

// revokeBySET pushes a RISC account-disabled event for a new subject.
func (s *soak) revokeBySET(ctx context.Context, n int) {
	sub := fmt.Sprintf("set-revoked-%d", n)
	tok, final, err := s.mintBefore(sub)
	if err != nil {
		s.log.Error("minting", "error", err)
		return
	}
	set, err := signSET(s.env.transmitter, sub)
	if err != nil {
		s.log.Error("signing a SET", "error", err)
		return
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.env.addr+"/v1/ssf/events", strings.NewReader(set))
	req.Header.Set("Content-Type", "application/secevent+jwt")
	status := s.call(req)
	s.acknowledged(status == http.StatusAccepted, &s.counts.sets, revoked{sub: sub, token: tok, final: final, via: "Shared Signals"})
}

// acknowledged counts an acknowledged or refused revocation; a refusal
// while the pdp is cold is expected and not counted as one.
func (s *soak) acknowledged(ok bool, tally *[2]int, r revoked) {
	c := &s.counts
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case ok:
		tally[0]++
		s.mu.Lock()
		s.revoked = append(s.revoked, r)
		s.mu.Unlock()
	case s.cold.Load():
		c.cold++
	default:
		tally[1]++
	}
}

// mintBefore mints two tokens for sub issued a few seconds ago (a
// revocation cuts off the tokens issued before it, and iat counts whole
// seconds): token lives as long as the fresh tokens, so that the tokens of
// revoked subjects the traffic carries leave the caches as the fresh ones
// do and the workload stays the same all run; final lives as long as the
// warm tokens and is sent once, by the check at the end.
func (s *soak) mintBefore(sub string) (token, final string, err error) {
	iat := time.Now().Add(-5 * time.Second)
	if token, err = mint(s.env.issuer, sub, map[string]any{"iat": iat.Unix(), "exp": iat.Add(s.o.FreshTTL).Unix()}); err != nil {
		return "", "", err
	}
	final, err = mint(s.env.issuer, sub, map[string]any{"iat": iat.Unix(), "exp": iat.Add(tokenTTL).Unix()})
	return token, final, err
}

func signSET(tx *devissuer.Issuer, sub string) (string, error) {
	header, _ := json.Marshal(map[string]any{"alg": "ES256", "typ": "secevent+jwt", "kid": tx.KID()})
	payload, _ := json.Marshal(map[string]any{
		"iss": transmitterURL, "aud": setAudience, "iat": time.Now().Unix(), "jti": rand.Text(),
		"sub_id": map[string]any{"format": "iss_sub", "iss": issuerURL, "sub": sub},
		"events": map[string]any{"https://schemas.openid.net/secevent/risc/event-type/account-disabled": map[string]any{}},
	})
	return devissuer.SignCompact(tx.PrivateKey(), "ES256", header, payload)
}

// edit changes the policy data; the status page shows each revision the
// pdp activated.
func (s *soak) edit(ctx context.Context) {
	s.counts.mu.Lock()
	s.counts.edits++
	n := s.counts.edits
	s.counts.mu.Unlock()
	if err := s.env.editPolicy(n); err != nil {
		s.log.Error("editing the policy data", "error", err)
		return
	}
	go func() {
		select {
		case <-ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		if rev := s.revision(ctx); rev != "" {
			s.counts.mu.Lock()
			s.counts.revisions[rev] = true
			s.counts.mu.Unlock()
		}
	}()
}

// revision is the active policy revision /v1/status reports.
func (s *soak) revision(ctx context.Context) string {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.env.addr+"/v1/status", nil)
	resp, err := s.client.Do(req)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	var st struct {
		Active struct {
			Revision string `json:"revision"`
		} `json:"active"`
	}
	_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st)
	return st.Active.Revision
}

// call sends req and returns its status, 0 when it got no answer.
func (s *soak) call(req *http.Request) int {
	resp, err := s.client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	return resp.StatusCode
}

// checkRevocations asks, for every acknowledged revocation, whether a
// token minted before it is denied for its subject's revocation now; lost
// lists those answered otherwise.
func (s *soak) checkRevocations(ctx context.Context) (lost []string, checked int) {
	s.mu.Lock()
	all := append([]revoked(nil), s.revoked...)
	s.mu.Unlock()
	for _, r := range all {
		body, _ := json.Marshal(map[string]any{"request": map[string]any{
			"method": "GET", "url": apiURL, "remote_ip": remoteIP,
			"headers": map[string]string{"authorization": "Bearer " + r.final, "user-agent": userAgent},
		}})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+s.env.addr+"/v1/decide", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := s.client.Do(req)
		if err != nil {
			lost = append(lost, fmt.Sprintf("%s (%s): %v", r.sub, r.via, err))
			continue
		}
		var d decision
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&d)
		resp.Body.Close()
		checked++
		if err != nil || d.Allow || len(d.Reasons) == 0 || d.Reasons[0].Code != "subject_revoked" {
			lost = append(lost, fmt.Sprintf("%s (%s): allow %v, reasons %v", r.sub, r.via, d.Allow, d.Reasons))
		}
	}
	return lost, checked
}

// sample is the pdp's memory and goroutines at one moment.
type sample struct {
	label      string
	up         time.Duration // since the pdp serving then was started
	rssMiB     float64
	peakMiB    float64 // the highest RSS read (every second) since the sample before
	medianMiB  float64 // the median of those readings: what the process holds, a collection's overshoot aside
	settled    bool    // most of those readings were taken once the caches had settled: peakMiB and medianMiB are of those only
	fileMiB    float64 // of the RSS, the mapped files' pages (the store's file, the binary)
	heapMiB    float64 // the Go heap in use (go_memstats_heap_inuse_bytes)
	goroutines int
	fds        int
	errors5xx  int     // 5xx answers so far
	kept       int     // decisions kept for reuse (bounded by decision_cache.max_entries and max_bytes)
	keptMiB    float64 // their estimated heap (decision_cache.bytes in /v1/status)
	tokens     int     // verified tokens cached
	tokensMiB  float64 // their estimated heap (token_cache.bytes)
}

// reading is one RSS reading of the pdp serving then, up since its start.
type reading struct {
	up  time.Duration
	mib float64
}

// window summarizes the readings since the sample before: settled when most
// of them were taken once the pdp had run for steadyAfter, and then the peak
// and median of those only, so that a steady sample's median holds nothing
// of the caches still filling; otherwise the peak and median of all.
func window(readings []reading, steadyAfter time.Duration) (peak, median float64, settled bool) {
	var all, late []float64
	for _, r := range readings {
		all = append(all, r.mib)
		if r.up >= steadyAfter {
			late = append(late, r.mib)
		}
	}
	if settled = len(late) > 0 && 2*len(late) > len(all); settled {
		all = late
	}
	peak, median = peakAndMedian(all)
	return peak, median, settled
}

// peakAndMedian are the highest and the median of RSS readings (0, 0
// without any).
func peakAndMedian(readings []float64) (peak, median float64) {
	if len(readings) == 0 {
		return 0, 0
	}
	sorted := slices.Sorted(slices.Values(readings))
	n := len(sorted)
	median = sorted[n/2]
	if n%2 == 0 {
		median = (sorted[n/2-1] + sorted[n/2]) / 2
	}
	return sorted[n-1], median
}

// readRSS is the resident set of process pid, in MiB.
func readRSS(pid int) (float64, error) { return readStatus(pid, "VmRSS:") }

// readStatus is a field of /proc/pid/status given in kB, in MiB.
func readStatus(pid int, field string) (float64, error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, field); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func (s *soak) sample(label string, pid int) (sample, error) {
	smp := sample{label: label}
	s.counts.mu.Lock()
	smp.errors5xx = s.counts.status5xx
	s.counts.mu.Unlock()
	var err error
	if smp.rssMiB, err = readRSS(pid); err != nil {
		return smp, err
	}
	smp.fileMiB, _ = readStatus(pid, "RssFile:")
	if resp, err := s.client.Get("http://" + s.env.addr + "/v1/status"); err == nil {
		var st struct {
			DecisionCache struct {
				Entries int     `json:"entries"`
				Bytes   float64 `json:"bytes"`
			} `json:"decision_cache"`
			TokenCache struct {
				Entries int     `json:"entries"`
				Bytes   float64 `json:"bytes"`
			} `json:"token_cache"`
		}
		_ = json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&st)
		resp.Body.Close()
		smp.kept, smp.keptMiB = st.DecisionCache.Entries, st.DecisionCache.Bytes/(1<<20)
		smp.tokens, smp.tokensMiB = st.TokenCache.Entries, st.TokenCache.Bytes/(1<<20)
	}
	var counts []goroutineCount
	for i := range goroutineReadings {
		if i > 0 {
			time.Sleep(goroutineReadingsApart)
		}
		c, heap, err := s.countGoroutines(pid)
		if err != nil {
			return smp, err
		}
		counts = append(counts, c)
		smp.heapMiB = heap
	}
	c := typicalCount(counts)
	smp.goroutines, smp.fds = c.goroutines, c.filesAfter
	return smp, nil
}

// goroutineReadings of the goroutines and open files, goroutineReadingsApart
// apart, make one sample's count (see typicalCount).
const (
	goroutineReadings      = 5
	goroutineReadingsApart = 100 * time.Millisecond
)

// goroutineCount is the pdp's goroutines, read between two counts of its
// open files.
type goroutineCount struct {
	filesBefore, goroutines, filesAfter int
}

// steady: no file was opened or closed while the goroutines were read, so
// the two counts are of the same connections.
func (c goroutineCount) steady() bool { return c.filesBefore == c.filesAfter }

func (c goroutineCount) other() int { return c.goroutines - c.filesAfter }

// typicalCount is, of counts, the one whose goroutines beside the open
// files are the median, among those read while no connection opened or
// closed (among all when there is none): a count read while the load
// generator's connections come and go pairs goroutines with files of
// another moment, and reads a few too many or too few (even fewer than
// none). A goroutine that leaks is in every count.
func typicalCount(counts []goroutineCount) goroutineCount {
	steady := slices.DeleteFunc(slices.Clone(counts), func(c goroutineCount) bool { return !c.steady() })
	if len(steady) == 0 {
		steady = slices.Clone(counts)
	}
	slices.SortStableFunc(steady, func(a, b goroutineCount) int { return a.other() - b.other() })
	return steady[(len(steady)-1)/2]
}

// countGoroutines reads the pdp's open files, its goroutines and Go heap
// in use (its metrics), and its open files again.
func (s *soak) countGoroutines(pid int) (goroutineCount, float64, error) {
	var c goroutineCount
	var heapMiB float64
	files := func() int {
		ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		return len(ents)
	}
	c.filesBefore = files()
	resp, err := s.client.Get("http://" + s.env.addr + "/metrics")
	if err != nil {
		return c, 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 16<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go_goroutines "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			c.goroutines = int(f)
		}
		if v, ok := strings.CutPrefix(sc.Text(), "go_memstats_heap_inuse_bytes "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			heapMiB = f / (1 << 20)
		}
	}
	c.filesAfter = files()
	return c, heapMiB, sc.Err()
}
