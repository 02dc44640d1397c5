package testpeers

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// NginxLogFormat is the access log format of StartNginx, one request per
// line, so that tests can count requests, connections (keep-alive) and the
// ranges asked for:
//
//	connection request_number method "uri" "range header" status body_bytes
//
// For example: 3 1 GET "/pub/a%20b.bin" "bytes=0-1023" 206 1024
const NginxLogFormat = `$connection $connection_requests $request_method "$request_uri" "$http_range" $status $body_bytes_sent`

// Nginx is a running nginx (Debian's package) serving one folder over HTTP
// on 127.0.0.1, as a web seed (BEP 19) for tests and benchmarks. It
// answers Range requests (206) as any static file server does, keeps
// connections alive, and logs every request to AccessLog.
type Nginx struct {
	// URL is the served folder's URL, ending in "/".
	URL string
	// Port is the TCP port on 127.0.0.1.
	Port int
	// Root is the served folder.
	Root string
	// AccessLog is the path of the access log, in NginxLogFormat.
	AccessLog string

	proc *process
}

// StartNginx starts nginx serving the folder root at URL until the end of
// the test, and returns once it answers. It runs as the current user in a
// single process (master_process off, daemon off) with its configuration,
// pid file, logs and temporary folders under a fresh t.TempDir, so it needs
// no root and touches nothing outside that folder. Each of directives is
// added verbatim to the server block, to make a misbehaving web seed: for
// example "max_ranges 0;" makes nginx ignore Range and send whole files,
// and "location = /loop { return 302 /loop; }" is a redirect loop.
func StartNginx(t testing.TB, root string, directives ...string) *Nginx {
	t.Helper()
	prog := nginxProgram(t)
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatalf("nginx: %v", err)
	}
	prefix := t.TempDir()
	for _, p := range []string{abs, prefix} {
		if strings.ContainsAny(p, "\"\\$\n\r;{}") {
			t.Fatalf("nginx: path %q has characters the generated configuration cannot quote", p)
		}
	}
	if st, err := os.Stat(abs); err != nil || !st.IsDir() {
		t.Fatalf("nginx: root %q is not a folder (%v)", root, err)
	}
	port := FreePort(t)
	n := &Nginx{
		URL:       "http://127.0.0.1:" + strconv.Itoa(port) + "/",
		Port:      port,
		Root:      abs,
		AccessLog: filepath.Join(prefix, "access.log"),
	}
	conf := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(conf, []byte(nginxConfig(prefix, abs, port, directives)), 0o644); err != nil {
		t.Fatalf("nginx: write config: %v", err)
	}
	// -e: Debian's nginx otherwise opens its compiled-in error log before
	// reading the configuration. -g is not used: everything is in the file.
	cmd := exec.Command(prog, "-p", prefix+"/", "-c", conf, "-e", filepath.Join(prefix, "error.log"))
	n.proc = startProcess(t, "nginx", cmd, nil, false)
	// nginx writes its own messages to error.log, not to stderr; show both.
	t.Cleanup(func() {
		if t.Failed() || os.Getenv(VerboseEnv) != "" {
			t.Logf("nginx: last lines of error.log:\n%s", tailFile(filepath.Join(prefix, "error.log"), logTailLines))
		}
	})

	client := &http.Client{Timeout: rpcTimeout}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(startWait)
	for {
		err := n.probe(client)
		if err == nil {
			return n
		}
		if gone, exitErr := n.proc.exited(); gone {
			t.Fatalf("nginx: %v\n%s\n%s", exitErr, tailFile(n.proc.logPath, logTailLines),
				tailFile(filepath.Join(prefix, "error.log"), logTailLines))
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not answer within %v: %v", startWait, err)
		}
		time.Sleep(pollInterval)
	}
}

// nginxProgram returns the path of nginx, which Debian installs in
// /usr/sbin, often not on an ordinary user's PATH; or skips the test.
func nginxProgram(t testing.TB) string {
	t.Helper()
	if path, err := exec.LookPath("nginx"); err == nil {
		return path
	}
	const debianPath = "/usr/sbin/nginx"
	if _, err := os.Stat(debianPath); err == nil {
		return debianPath
	}
	missing(t, "nginx", "nginx")
	return ""
}

// nginxProbePath is answered 204 and not logged, so that start-up probes
// do not show among the requests a test counts.
const nginxProbePath = ".testpeers-probe"

// probe asks nginx for its probe path: a 204 means that this nginx, not
// something else that took the port, is serving.
func (n *Nginx) probe(client *http.Client) error {
	ctx, cancel := context.WithTimeout(context.Background(), rpcTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, n.URL+nginxProbePath, nil)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("probe: HTTP %s, want 204", resp.Status)
	}
	return nil
}

// Stop stops nginx; the end of the test does it too.
func (n *Nginx) Stop() { n.proc.stop() }

// nginxConfig returns a configuration serving root on 127.0.0.1:port, with
// everything nginx writes kept under prefix.
func nginxConfig(prefix, root string, port int, directives []string) string {
	// StartNginx has rejected paths with quotes, backslashes or "$".
	q := func(s string) string { return `"` + s + `"` }
	var b strings.Builder
	fmt.Fprintf(&b, `# Generated by testpeers.StartNginx.
daemon off;
master_process off;
worker_processes 1;
pid %s;
error_log %s info;
events {
	worker_connections 1024;
}
http {
	default_type application/octet-stream;
	client_body_temp_path %s;
	proxy_temp_path %s;
	fastcgi_temp_path %s;
	uwsgi_temp_path %s;
	scgi_temp_path %s;
	log_format testpeers '%s';
	access_log %s testpeers;
	sendfile on;
	tcp_nopush on;
	keepalive_timeout 60s;
	keepalive_requests 1000000;
	server {
		listen 127.0.0.1:%d;
		server_name localhost;
		root %s;
		autoindex off;
		location = /%s {
			access_log off;
			return 204;
		}
`,
		q(filepath.Join(prefix, "nginx.pid")), q(filepath.Join(prefix, "error.log")),
		q(filepath.Join(prefix, "body")), q(filepath.Join(prefix, "proxy")),
		q(filepath.Join(prefix, "fastcgi")), q(filepath.Join(prefix, "uwsgi")),
		q(filepath.Join(prefix, "scgi")),
		NginxLogFormat, q(filepath.Join(prefix, "access.log")),
		port, q(root), nginxProbePath)
	for _, d := range directives {
		fmt.Fprintf(&b, "\t\t%s\n", d)
	}
	b.WriteString("\t}\n}\n")
	return b.String()
}
