package testpeers

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Redis is a redis-server (Debian's redis-server package) on 127.0.0.1
// with its own data directory, persisting nothing, until the end of the
// test. Stop and Start stop it and start it again on the same port.
type Redis struct {
	// Addr is host:port; Port the port alone.
	Addr string
	Port int

	t     testing.TB
	prog  string
	dir   string
	extra []string
	mu    sync.Mutex
	proc  *process
}

// StartRedis starts redis-server on a free port of 127.0.0.1 with extra
// configuration arguments (such as "--cluster-enabled", "yes") and returns
// once it answers PING.
func StartRedis(t testing.TB, extra ...string) *Redis {
	t.Helper()
	r := &Redis{t: t, prog: needProgram(t, "redis-server", "redis-server"), dir: t.TempDir(), extra: extra}
	r.Port = FreePort(t)
	r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(r.Port))
	r.Start()
	return r
}

// Start starts the server (again, after Stop) and waits until it answers.
func (r *Redis) Start() {
	r.t.Helper()
	args := append([]string{
		"--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--save", "", "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no",
		"--logfile", "",
	}, r.extra...)
	p := startProcess(r.t, "redis-server-"+strconv.Itoa(r.Port), exec.Command(r.prog, args...), nil, false)
	r.mu.Lock()
	r.proc = p
	r.mu.Unlock()
	deadline := time.Now().Add(startWait)
	for {
		if err := redisPing(r.Addr); err == nil {
			return
		} else if gone, exitErr := p.exited(); gone {
			r.t.Fatalf("redis-server: %v\n%s", exitErr, tailFile(p.logPath, logTailLines))
		} else if time.Now().After(deadline) {
			r.t.Fatalf("redis-server on %s did not answer within %v: %v", r.Addr, startWait, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop stops the server and waits until it has exited.
func (r *Redis) Stop() {
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	p.stop()
}

// Pause stops the server with SIGSTOP (it keeps its connections but
// answers nothing, like a server that hangs); Resume continues it.
func (r *Redis) Pause() error { return r.signalProc("STOP") }

// Resume continues a paused server.
func (r *Redis) Resume() error { return r.signalProc("CONT") }

func (r *Redis) signalProc(sig string) error {
	r.mu.Lock()
	p := r.proc
	r.mu.Unlock()
	return exec.Command("kill", "-"+sig, strconv.Itoa(p.cmd.Process.Pid)).Run()
}

// Pid is the server process's id.
func (r *Redis) Pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc.cmd.Process.Pid
}

// CLI runs redis-cli against the server with args and returns its output.
func (r *Redis) CLI(args ...string) (string, error) {
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return "", fmt.Errorf("redis-cli not installed (Debian package redis-tools): %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, cli, append([]string{"-h", "127.0.0.1", "-p", strconv.Itoa(r.Port)}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("redis-cli %s: %w: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// redisPing sends PING and expects PONG.
func redisPing(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "+PONG") {
		return fmt.Errorf("PING answered %q", strings.TrimSpace(line))
	}
	return nil
}

// StartRedisCluster starts masters redis-server nodes in cluster mode,
// each with replicas replicas, joins them with `redis-cli --cluster
// create` and returns once the cluster state is ok on every node. The
// masters come first in the result.
func StartRedisCluster(t testing.TB, masters, replicas int) []*Redis {
	t.Helper()
	needProgram(t, "redis-cli", "redis-tools")
	n := masters * (1 + replicas)
	nodes := make([]*Redis, n)
	addrs := make([]string, n)
	for i := range nodes {
		nodes[i] = StartRedis(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "1000", "--cluster-require-full-coverage", "no")
		addrs[i] = nodes[i].Addr
	}
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	if out, err := nodes[0].CLI(args...); err != nil {
		t.Fatalf("create cluster: %v\n%s", err, out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, r := range nodes {
		for {
			out, err := r.CLI("cluster", "info")
			if err == nil && strings.Contains(out, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster on %s not ok within 30s: %v\n%s", r.Addr, err, out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// `--cluster create` gives replicas to masters in its own order; the
	// roles are read back so that callers know which node is which.
	var ms, rs []*Redis
	for _, r := range nodes {
		out, err := r.CLI("role")
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(out, "master") {
			ms = append(ms, r)
		} else {
			rs = append(rs, r)
		}
	}
	if len(ms) != masters {
		t.Fatalf("cluster has %d masters, want %d", len(ms), masters)
	}
	return append(ms, rs...)
}

// LogPath is the file that holds the server's output.
func (r *Redis) LogPath() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.proc.logPath
}
