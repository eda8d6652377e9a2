package main

import (
	"bufio"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

// dockerfile is the parsed Dockerfile at the repository root: its
// instructions in order, continuation lines joined.
type dockerfile []instruction

type instruction struct {
	cmd, args string
}

func readDockerfile(t *testing.T) dockerfile {
	t.Helper()
	f, err := os.Open("../../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var d dockerfile
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if rest, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(rest + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		d = append(d, instruction{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return d
}

func (d dockerfile) all(cmd string) []string {
	var out []string
	for _, in := range d {
		if in.cmd == cmd {
			out = append(out, in.args)
		}
	}
	return out
}

// finalStage is the instructions from the last FROM on.
func (d dockerfile) finalStage() dockerfile {
	for i := len(d) - 1; i >= 0; i-- {
		if d[i].cmd == "FROM" {
			return d[i:]
		}
	}
	return nil
}

var buildLine = regexp.MustCompile(`(?:^|&&\s*)((?:[A-Z_]+=\S+\s+)*)go build (.*?)(?:\s+-o\s+\S+)\s+(\./cmd/pdp)`)

// pdpBuild returns the environment and the flags of the Dockerfile's
// `go build ... ./cmd/pdp`, as an integration test repeats it.
func (d dockerfile) pdpBuild(t *testing.T) (env, flags []string) {
	t.Helper()
	for _, run := range d.all("RUN") {
		m := buildLine.FindStringSubmatch(run)
		if m == nil {
			continue
		}
		env = strings.Fields(m[1])
		for _, f := range regexp.MustCompile(`-ldflags="[^"]*"|\S+`).FindAllString(m[2], -1) {
			flags = append(flags, strings.ReplaceAll(f, `"`, ""))
		}
		return env, flags
	}
	t.Fatal("the Dockerfile has no RUN ... go build ... -o ... ./cmd/pdp")
	return nil, nil
}

// TestDockerfile checks what the image promises without a container
// engine: a multi-stage build of a static, trimmed binary, a distroless (or
// scratch) base, a non-root user, /data as a volume, pdp serve as the
// entrypoint and pdp healthcheck as the health check.
func TestDockerfile(t *testing.T) {
	d := readDockerfile(t)
	if froms := d.all("FROM"); len(froms) < 2 {
		t.Errorf("FROM %v: want a multi-stage build", froms)
	}
	final := d.finalStage()
	base := final[0].args
	if !strings.HasPrefix(base, "gcr.io/distroless/static") && base != "scratch" {
		t.Errorf("final base %q: want distroless static or scratch (a static binary needs no libc)", base)
	}
	env, flags := d.pdpBuild(t)
	if !contains(env, "CGO_ENABLED=0") {
		t.Errorf("go build environment %v lacks CGO_ENABLED=0", env)
	}
	if !contains(flags, "-trimpath") {
		t.Errorf("go build flags %v lack -trimpath", flags)
	}
	users := final.all("USER")
	if len(users) == 0 {
		t.Error("the final stage sets no USER: it would run as root")
	}
	for _, u := range users {
		name, _, _ := strings.Cut(u, ":")
		if name == "0" || name == "root" {
			t.Errorf("USER %s is root", u)
		}
	}
	if v := final.all("VOLUME"); len(v) != 1 || !strings.Contains(v[0], `"/data"`) {
		t.Errorf("VOLUME %v: want [\"/data\"]", v)
	}
	if e := final.all("ENV"); len(e) == 0 || !strings.Contains(e[0], "PDP_DATA_DIR=/data") {
		t.Errorf("ENV %v: the state must go to the /data volume (PDP_DATA_DIR=/data)", e)
	}
	if e := final.all("ENTRYPOINT"); len(e) != 1 || !regexp.MustCompile(`^\["[^"]*/pdp", "serve"\]$`).MatchString(e[0]) {
		t.Errorf("ENTRYPOINT %v: want [\".../pdp\", \"serve\"] (exec form)", e)
	}
	hc := final.all("HEALTHCHECK")
	if len(hc) != 1 || !regexp.MustCompile(`CMD \["[^"]*/pdp", "healthcheck"\]`).MatchString(hc[0]) {
		t.Errorf("HEALTHCHECK %v: want CMD [\".../pdp\", \"healthcheck\"] (distroless has no curl)", hc)
	}
	if _, _, err := newRootCommand().Find([]string{"healthcheck"}); err != nil {
		t.Errorf("the health check's subcommand does not exist: %v", err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestHealthcheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	for _, tc := range []struct {
		name   string
		status int
		url    string
		exit   int
	}{
		{"ok/healthz answers 200", http.StatusOK, srv.URL + "/healthz", 0},
		{"fail/healthz answers 503", http.StatusServiceUnavailable, srv.URL + "/healthz", 1},
		{"fail/another path answers 404", http.StatusOK, srv.URL + "/nothing", 1},
		{"fail/nothing listens", http.StatusOK, closed.URL + "/healthz", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status = tc.status
			if got := run([]string{"healthcheck", "--url", tc.url, "--timeout", "5s"}); got != tc.exit {
				t.Errorf("exit %d, want %d", got, tc.exit)
			}
		})
	}
}

func TestHealthURL(t *testing.T) {
	for listen, want := range map[string]string{
		"":               "http://127.0.0.1:8181/healthz",
		"0.0.0.0:8181":   "http://127.0.0.1:8181/healthz",
		":9000":          "http://127.0.0.1:9000/healthz",
		"[::]:8181":      "http://127.0.0.1:8181/healthz",
		"10.1.2.3:8181":  "http://10.1.2.3:8181/healthz",
		"[::1]:8181":     "http://[::1]:8181/healthz",
		"localhost:8181": "http://localhost:8181/healthz",
	} {
		if got := healthURL(listen); got != want {
			t.Errorf("healthURL(%q) = %q, want %q", listen, got, want)
		}
	}
}
