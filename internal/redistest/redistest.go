// Package redistest runs a real redis-server for tests: on a free port, in
// a temporary directory, with append-only persistence so that a server
// killed and started again keeps its data (as a production Redis that holds
// revocations must). Tests that use it sit behind the integration build tag;
// CI installs redis-server.
package redistest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Server is one redis-server process.
type Server struct {
	t     testing.TB
	dir   string
	port  int
	extra []string
	cmd   *exec.Cmd
}

// Start starts a redis-server, with args added to its command line, and
// stops it when the test ends. Without redis-server on the PATH (or in
// /usr/bin) the test fails: CI installs it.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir(), port: freePort(t), extra: args}
	s.Start()
	t.Cleanup(s.Kill)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Start starts the server (again, after Kill) on the same port and
// directory, and waits until it answers.
func (s *Server) Start() {
	s.t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		bin = "/usr/bin/redis-server"
		if _, err := os.Stat(bin); err != nil {
			s.t.Fatalf("redis-server is not installed (apt-get install -y redis-server): %v", err)
		}
	}
	args := append([]string{
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--dir", s.dir,
		"--save", "", "--appendonly", "yes", "--appendfsync", "always",
		"--logfile", filepath.Join(s.dir, "redis.log"), "--daemonize", "no"}, s.extra...)
	s.cmd = exec.Command(bin, args...)
	if err := s.cmd.Start(); err != nil {
		s.t.Fatalf("start redis-server: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if s.ping() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	log, _ := os.ReadFile(filepath.Join(s.dir, "redis.log"))
	s.t.Fatalf("redis-server did not answer on %s\n%s", s.Addr(), log)
}

// StartCluster starts n redis-servers in cluster mode, joins them into one
// cluster of n masters (the slots split between them) and waits until it
// serves. It returns the servers; any of their addresses reaches the
// cluster.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	return StartClusterWithReplicas(t, n, 0)
}

// StartClusterWithReplicas starts masters*(1+replicas) redis-servers in
// cluster mode, joins them into a cluster of masters with replicas each and
// waits until every node sees it ok. Nodes give up on an unreachable master
// after a second (cluster-node-timeout 1000), so a replica is promoted a
// few seconds after its master dies.
func StartClusterWithReplicas(t testing.TB, masters, replicas int) []*Server {
	t.Helper()
	cli := redisCLI(t)
	var servers []*Server
	var addrs []string
	for range masters * (1 + replicas) {
		s := &Server{t: t, dir: t.TempDir(), port: freeClusterPort(t)}
		s.extra = []string{"--cluster-enabled", "yes", "--cluster-config-file", filepath.Join(s.dir, "nodes.conf"), "--cluster-node-timeout", "1000",
			"--repl-diskless-sync-delay", "0"}
		s.Start()
		t.Cleanup(s.Kill)
		servers = append(servers, s)
		addrs = append(addrs, s.Addr())
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := exec.Command(cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range servers {
		for {
			out, _ := s.CLI("cluster", "info")
			if strings.Contains(out, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the cluster never became ok:\n%s", out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// A replica that has not synced with its master yet would not be
	// promoted when the master dies.
	for _, s := range servers {
		for {
			out, _ := s.CLI("info", "replication")
			if strings.Contains(out, "role:master") || strings.Contains(out, "master_link_status:up") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("a replica never synced with its master:\n%s", out)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return servers
}

// CLI runs redis-cli against the server and returns its output.
func (s *Server) CLI(args ...string) (string, error) {
	out, err := exec.Command(redisCLI(s.t), append([]string{"-p", strconv.Itoa(s.port)}, args...)...).Output()
	return string(out), err
}

// StartReplica starts a redis-server that replicates master, and waits
// until it has synced.
func StartReplica(t testing.TB, master *Server) *Server {
	t.Helper()
	s := Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(master.port), "--repl-diskless-sync-delay", "0")
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := s.CLI("info", "replication")
		if strings.Contains(out, "master_link_status:up") {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("the replica never synced with its master:\n%s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func redisCLI(t testing.TB) string {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		cli = "/usr/bin/redis-cli"
		if _, err := os.Stat(cli); err != nil {
			t.Fatalf("redis-cli is not installed (apt-get install -y redis-tools): %v", err)
		}
	}
	return cli
}

// StartSentinel starts a Sentinel that monitors master under the name
// "mymaster" and waits until it knows the master. Its address goes into
// the client's addresses, with the master name.
func StartSentinel(t testing.TB, master *Server) *Server {
	t.Helper()
	return startSentinel(t, master, 1, 2000)
}

// StartSentinels starts n Sentinels that monitor master as "mymaster" with
// the given quorum, give up on it after a second, and waits until each
// knows the others and master's replicas (wantReplicas).
func StartSentinels(t testing.TB, master *Server, n, quorum, wantReplicas int) []*Server {
	t.Helper()
	var out []*Server
	for range n {
		out = append(out, startSentinel(t, master, quorum, 1000))
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, s := range out {
		for {
			sentinels, _ := s.CLI("sentinel", "sentinels", "mymaster")
			replicas, _ := s.CLI("sentinel", "replicas", "mymaster")
			if entries(sentinels) >= n-1 && entries(replicas) >= wantReplicas {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("sentinel %s does not know the others or the replicas:\n%s\n%s", s.Addr(), sentinels, replicas)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return out
}

// entries counts the entries of a redis-cli listing of Sentinel records
// (each starts with a "name" field).
func entries(out string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.TrimSpace(line) == "name" {
			n++
		}
	}
	return n
}

func startSentinel(t testing.TB, master *Server, quorum, downAfterMillis int) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir(), port: freePort(t)}
	conf := filepath.Join(s.dir, "sentinel.conf")
	body := fmt.Sprintf("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor mymaster 127.0.0.1 %d %d\n"+
		"sentinel down-after-milliseconds mymaster %d\nsentinel failover-timeout mymaster 5000\n",
		s.port, s.dir, master.port, quorum, downAfterMillis)
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		bin = "/usr/bin/redis-server"
	}
	s.cmd = exec.Command(bin, conf, "--sentinel", "--logfile", filepath.Join(s.dir, "sentinel.log"))
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start redis sentinel: %v", err)
	}
	t.Cleanup(s.Kill)
	deadline := time.Now().Add(10 * time.Second)
	for !s.ping() {
		if time.Now().After(deadline) {
			t.Fatalf("the sentinel did not answer on %s", s.Addr())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// Pause stops the server without closing its connections (SIGSTOP): calls
// to it hang until Resume, as with a server stuck or swapped out.
func (s *Server) Pause() {
	s.t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		s.t.Fatalf("pause redis-server: %v", err)
	}
	s.t.Cleanup(s.Resume)
}

// Resume continues a paused server (SIGCONT).
func (s *Server) Resume() {
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
}

// Kill stops the server at once (SIGKILL), as a crash would.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}

// ping sends PING over a raw connection.
func (s *Server) ping() bool {
	c, err := net.DialTimeout("tcp", s.Addr(), 200*time.Millisecond)
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := fmt.Fprint(c, "PING\r\n"); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	// A server that requires a password answers, too: it is up.
	return err == nil && (strings.HasPrefix(line, "+PONG") || strings.HasPrefix(line, "-NOAUTH"))
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// freeClusterPort returns a free port whose cluster bus port (port+10000)
// is free and valid too.
func freeClusterPort(t testing.TB) int {
	t.Helper()
	for range 100 {
		p := freePort(t)
		if p+10000 > 65535 {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p+10000))
		if err != nil {
			continue
		}
		l.Close()
		return p
	}
	t.Fatal("no free port pair for a cluster node")
	return 0
}
