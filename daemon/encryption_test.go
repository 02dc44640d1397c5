package daemon

import (
	"testing"

	"github.com/sowerbt/sower/session"
)

// TestRPCEncryptionSetting: session-set encryption changes the session's
// policy, session-get reports it, the setting survives a restart, and
// --encryption (Config.Encryption) overrides the stored one.
func TestRPCEncryptionSetting(t *testing.T) {
	dir := t.TempDir()
	d := startDaemon(t, Config{DataDir: dir, RPCAddr: "127.0.0.1:0"})
	c := newRPC(t, d)
	get := func() string {
		t.Helper()
		res, args := c.call("session-get", map[string]any{"fields": []string{"encryption"}})
		if res != "success" {
			t.Fatalf("session-get: %s", res)
		}
		return string(args["encryption"])
	}
	if got := get(); got != `"preferred"` || d.sess.Encryption() != session.EncryptionPrefer {
		t.Fatalf("default: session-get %s, session %v; want preferred", got, d.sess.Encryption())
	}
	for _, tc := range []struct {
		name string
		want session.Encryption
	}{{"required", session.EncryptionRequire}, {"tolerated", session.EncryptionOff}, {"preferred", session.EncryptionPrefer}, {"required", session.EncryptionRequire}} {
		if res, _ := c.call("session-set", map[string]any{"encryption": tc.name}); res != "success" {
			t.Fatalf("session-set %s: %s", tc.name, res)
		}
		if got := get(); got != `"`+tc.name+`"` || d.sess.Encryption() != tc.want {
			t.Fatalf("after session-set %s: session-get %s, session %v", tc.name, got, d.sess.Encryption())
		}
	}
	if res, _ := c.call("session-set", map[string]any{"encryption": "sometimes"}); res == "success" {
		t.Fatal("an unknown encryption mode was accepted")
	}
	if d.sess.Encryption() != session.EncryptionRequire {
		t.Fatalf("a refused session-set changed the policy to %v", d.sess.Encryption())
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, Config{DataDir: dir, RPCAddr: "127.0.0.1:0"})
	if d.sess.Encryption() != session.EncryptionRequire {
		t.Fatalf("after a restart: %v, want the stored require", d.sess.Encryption())
	}
	if err := d.stop(); err != nil {
		t.Fatal(err)
	}
	d = startDaemon(t, Config{DataDir: dir, RPCAddr: "127.0.0.1:0", Encryption: "off"})
	if d.sess.Encryption() != session.EncryptionOff || d.Settings().Encryption != "off" {
		t.Fatalf("with Config.Encryption off: %v, setting %q", d.sess.Encryption(), d.Settings().Encryption)
	}
}
