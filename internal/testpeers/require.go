package testpeers

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// RequireEnv names the environment variable that turns "program not
// installed" from a skip into a failure. scripts/test.sh sets it after
// installing the programs, so that CI never passes by skipping.
const RequireEnv = "TESTPEERS_REQUIRE"

// debianPython is the interpreter that can import python3-libtorrent; a
// python3 earlier on PATH (pyenv, venv) usually cannot.
const debianPython = "/usr/bin/python3"

// missing skips the test (or fails it under RequireEnv) because what is
// named is not installed.
func missing(t testing.TB, what, debPackage string) {
	t.Helper()
	msg := what + " not installed: run scripts/test.sh to install it (Debian package " + debPackage + ")"
	if os.Getenv(RequireEnv) != "" {
		t.Fatalf("%s; %s is set", msg, RequireEnv)
	}
	t.Skip(msg)
}

// needProgram returns the path of program, or skips the test when it is not
// installed.
func needProgram(t testing.TB, program, debPackage string) string {
	t.Helper()
	path, err := exec.LookPath(program)
	if err != nil {
		missing(t, program, debPackage)
	}
	return path
}

// needLibtorrent returns the Python interpreter that has libtorrent, or
// skips the test when it is not installed.
func needLibtorrent(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(debianPython); err != nil {
		missing(t, debianPython, "python3-libtorrent")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, debianPython, "-c", "import libtorrent").CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "No module named") {
			missing(t, "python3 module libtorrent", "python3-libtorrent")
		}
		t.Fatalf("%s cannot import libtorrent: %v\n%s", debianPython, err, out)
	}
	return debianPython
}
