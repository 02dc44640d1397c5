package daemon

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
)

// credential is a password kept only as a salted SHA-256 digest, so
// neither the state database nor a memory dump holds it in clear. A fast
// hash is enough: a generated password carries 96 random bits, beyond any
// guessing, and every RPC request is checked against it, which a slow key
// derivation would make expensive. The zero credential means no password.
type credential struct {
	salt, sum []byte
}

func newCredential(password string) credential {
	salt := make([]byte, 16)
	rand.Read(salt)
	return credential{salt: salt, sum: saltedSum(salt, password)}
}

func saltedSum(salt []byte, password string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(password))
	return h.Sum(nil)
}

// set reports whether c asks for a password.
func (c credential) set() bool { return c.sum != nil }

// matches compares in constant time.
func (c credential) matches(password string) bool {
	return c.set() && subtle.ConstantTimeCompare(saltedSum(c.salt, password), c.sum) == 1
}

const credentialScheme = "sha256"

// String is the stored form: sha256$SALT$SUM in hex.
func (c credential) String() string {
	return credentialScheme + "$" + hex.EncodeToString(c.salt) + "$" + hex.EncodeToString(c.sum)
}

func parseCredential(s string) (credential, error) {
	parts := strings.Split(s, "$")
	if len(parts) != 3 || parts[0] != credentialScheme {
		return credential{}, errors.New("stored RPC password hash: unknown format")
	}
	salt, err1 := hex.DecodeString(parts[1])
	sum, err2 := hex.DecodeString(parts[2])
	if err1 != nil || err2 != nil || len(salt) == 0 || len(sum) != sha256.Size {
		return credential{}, errors.New("stored RPC password hash: malformed")
	}
	return credential{salt: salt, sum: sum}, nil
}

// setupAuth makes sure a daemon reachable from other hosts asks for a
// password. If none was configured, one is generated the first time,
// handed once to Config.ShowPassword (the terminal that started sower
// daemon), and only its hash is stored; later starts check against that
// hash. A password nobody could be shown is not generated: Open fails.
func (d *Daemon) setupAuth(addr net.Addr) error {
	if d.cfg.Password != "" {
		d.username, d.cred = d.cfg.Username, newCredential(d.cfg.Password)
		if d.username == "" {
			d.username = "sower"
		}
		return nil
	}
	ta, ok := addr.(*net.TCPAddr)
	if ok && ta.IP.IsLoopback() {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.username = "sower"
	if stored := d.settings.GeneratedPasswordHash; stored != "" {
		cred, err := parseCredential(stored)
		if err != nil {
			return fmt.Errorf("daemon: %w; give a password", err)
		}
		d.cred = cred
		d.log.Info("RPC listens beyond loopback: it asks for the password generated at the first start (shown then; only its hash is kept)", "user", d.username)
		return nil
	}
	if d.cfg.ShowPassword == nil {
		return fmt.Errorf("daemon: RPC on %s is reachable beyond loopback: give a password (a generated one could not be shown to anyone)", addr)
	}
	password := randomToken(12)
	if err := d.cfg.ShowPassword(d.username, password); err != nil {
		return fmt.Errorf("daemon: RPC on %s is reachable beyond loopback and needs a password: %w", addr, err)
	}
	d.cred = newCredential(password)
	d.settings.GeneratedPasswordHash = d.cred.String()
	if err := d.db.saveSettings(&d.settings); err != nil {
		return err
	}
	d.log.Warn("RPC listens beyond loopback without a configured password: generated one, shown once to whoever started the daemon; only its hash is kept", "user", d.username)
	return nil
}

// migratePlainPassword replaces a generated password that an older
// version stored in clear with its hash; raw is the stored settings.
func migratePlainPassword(raw []byte, into *Settings) (bool, error) {
	if !bytes.Contains(raw, []byte(`"generated_password"`)) {
		return false, nil
	}
	var legacy struct {
		Plain string `json:"generated_password"`
	}
	if err := json.Unmarshal(raw, &legacy); err != nil || legacy.Plain == "" {
		return false, err
	}
	if into.GeneratedPasswordHash == "" {
		into.GeneratedPasswordHash = newCredential(legacy.Plain).String()
	}
	return true, nil
}
