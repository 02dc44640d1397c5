package testpeers

import "testing"

// Encryption is what a program demands of its peer connections' Message
// Stream Encryption (MSE), in and out.
type Encryption int

const (
	// EncryptionDefault keeps the program's default, which accepts
	// plaintext peers.
	EncryptionDefault Encryption = iota
	// RequireRC4 accepts and makes only MSE connections with an
	// RC4-encrypted payload.
	RequireRC4
	// RequireObfuscation accepts and makes only MSE connections with a
	// plaintext payload after the obfuscated handshake (libtorrent's
	// allowed_enc_level=plaintext; aria2 offers RC4 too).
	RequireObfuscation
)

func (e Encryption) String() string {
	switch e {
	case RequireRC4:
		return "rc4"
	case RequireObfuscation:
		return "obfuscation"
	}
	return "default"
}

// LibtorrentSeedEncrypted is LibtorrentSeed with the encryption policy
// forced (out_enc_policy and in_enc_policy) at enc's level.
func LibtorrentSeedEncrypted(t testing.TB, torrent, dataDir string, enc Encryption, peers ...string) *Peer {
	t.Helper()
	state := newLtState()
	flags := append(libtorrentEncFlags(enc), peerFlags(peers)...)
	return startLibtorrent(t, "libtorrent-seed", flags, "seed", torrent, dataDir, state, state.line)
}

// LibtorrentGetEncrypted is LibtorrentGet with the encryption policy
// forced at enc's level.
func LibtorrentGetEncrypted(t testing.TB, torrent, outDir string, enc Encryption, peers ...string) *Peer {
	t.Helper()
	state := newLtState()
	flags := append(libtorrentEncFlags(enc), peerFlags(peers)...)
	return startLibtorrent(t, "libtorrent-get", flags, "get", torrent, outDir, state, state.line)
}

func libtorrentEncFlags(enc Encryption) []string {
	switch enc {
	case RequireRC4:
		return []string{"--encryption", "rc4"}
	case RequireObfuscation:
		return []string{"--encryption", "plaintext"}
	}
	return nil
}

// Aria2SeedEncrypted is Aria2Seed requiring encryption
// (--bt-require-crypto): RequireRC4 also sets --bt-min-crypto-level=arc4;
// with RequireObfuscation aria2c offers both methods.
func Aria2SeedEncrypted(t testing.TB, torrent, dataDir string, enc Encryption, peers ...string) *Peer {
	t.Helper()
	return startAria2(t, "seed", torrent, dataDir, peers, "--seed-ratio=0.0", aria2EncFlags(enc)...)
}

// Aria2GetEncrypted is Aria2Get requiring encryption, as Aria2SeedEncrypted.
func Aria2GetEncrypted(t testing.TB, torrent, outDir string, enc Encryption, peers ...string) *Peer {
	t.Helper()
	return startAria2(t, "get", torrent, outDir, peers, "--seed-time=0", aria2EncFlags(enc)...)
}

func aria2EncFlags(enc Encryption) []string {
	switch enc {
	case RequireRC4:
		return []string{"--bt-require-crypto=true", "--bt-min-crypto-level=arc4"}
	case RequireObfuscation:
		return []string{"--bt-require-crypto=true", "--bt-min-crypto-level=plain"}
	}
	return nil
}

// TransmissionSeedEncrypted is TransmissionSeed with "encryption": 2
// (required) for RequireRC4. Transmission has no obfuscation-only mode:
// RequireObfuscation fails the test.
func TransmissionSeedEncrypted(t testing.TB, torrent, dataDir string, enc Encryption) *Peer {
	t.Helper()
	return startTransmission(t, "seed", torrent, dataDir, transmissionEncryption(t, enc))
}

// TransmissionGetEncrypted is TransmissionGet with encryption as
// TransmissionSeedEncrypted.
func TransmissionGetEncrypted(t testing.TB, torrent, outDir string, enc Encryption) *Peer {
	t.Helper()
	return startTransmission(t, "get", torrent, outDir, transmissionEncryption(t, enc))
}

// transmissionEncryption is the settings.json "encryption" value for enc:
// 0 tolerated, 1 preferred (its default), 2 required.
func transmissionEncryption(t testing.TB, enc Encryption) int {
	switch enc {
	case RequireRC4:
		return 2
	case RequireObfuscation:
		t.Fatalf("transmission has no obfuscation-only encryption mode")
	}
	return 1
}
