package trackerserver

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/sowerbt/sower/metainfo"
)

// DBFile is the database's name inside the data directory.
const DBFile = "tracker.db"

// Database buckets.
var (
	bucketUsers    = []byte("users")    // name -> JSON User
	bucketPasskeys = []byte("passkeys") // passkey -> name
	bucketCounts   = []byte("counts")   // info-hash -> completed (8 bytes BE)
	bucketTorrents = []byte("torrents") // info-hash -> JSON TorrentInfo
	bucketFiles    = []byte("files")    // info-hash -> .torrent bytes
	bucketMeta     = []byte("meta")     // "admin-token" -> token
)

// ErrLocked is returned by OpenStore when another process (normally a
// running tracker) holds the database.
var ErrLocked = errors.New("tracker database is in use by another process (is `sower tracker` running? stop it first)")

// User is a private tracker's member, identified by a unique name.
type User struct {
	Name    string    `json:"name"`
	Passkey string    `json:"passkey,omitempty"` // empty once revoked
	Created time.Time `json:"created"`
	// Uploaded and Downloaded are bytes reported in this user's announces.
	Uploaded   int64 `json:"uploaded"`
	Downloaded int64 `json:"downloaded"`
}

// Ratio is uploaded/downloaded, or 0 when nothing was downloaded.
func (u User) Ratio() float64 {
	if u.Downloaded == 0 {
		return 0
	}
	return float64(u.Uploaded) / float64(u.Downloaded)
}

// TorrentInfo describes a .torrent uploaded by the operator.
type TorrentInfo struct {
	InfoHash    string    `json:"info_hash"` // hex
	Name        string    `json:"name"`
	Size        int64     `json:"size"`
	Description string    `json:"description"`
	Added       time.Time `json:"added"`
}

// Store is the tracker's database: users and passkeys, download counts and
// uploaded torrents. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// OpenStore opens (creating if needed) the database in dir. It fails with
// ErrLocked within a second if another process has it open.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("tracker data directory: %w", err)
	}
	path := filepath.Join(dir, DBFile)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("%s: %w", path, ErrLocked)
		}
		return nil, fmt.Errorf("open tracker database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketUsers, bucketPasskeys, bucketCounts, bucketTorrents, bucketFiles, bucketMeta} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialise tracker database %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// validName keeps user names printable and short, since they appear in
// command output and on web pages.
var validName = regexp.MustCompile(`^[A-Za-z0-9._@-]{1,64}$`)

func newPasskey() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NewPasskey returns a fresh random passkey (32 hex digits).
func NewPasskey() string { return newPasskey() }

// CheckUserName refuses user names that are not 1 to 64 letters, digits,
// '.', '_', '@' or '-'.
func CheckUserName(name string) error {
	if !validName.MatchString(name) {
		return fmt.Errorf("user name %q: use 1 to 64 letters, digits, '.', '_', '@' or '-'", name)
	}
	return nil
}

// AddUser creates a user with a fresh passkey and returns it.
func (s *Store) AddUser(name string) (User, error) {
	if err := CheckUserName(name); err != nil {
		return User{}, err
	}
	u := User{Name: name, Passkey: newPasskey(), Created: time.Now().UTC().Truncate(time.Second)}
	err := s.db.Update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketUsers).Get([]byte(name)) != nil {
			return fmt.Errorf("user %q already exists (rotate its passkey instead)", name)
		}
		return putUser(tx, u)
	})
	return u, err
}

// RotateUser gives the user a new passkey; the old one stops working and
// the byte counts are kept.
func (s *Store) RotateUser(name string) (User, error) {
	var u User
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if u, err = getUser(tx, name); err != nil {
			return err
		}
		if u.Passkey != "" {
			if err := tx.Bucket(bucketPasskeys).Delete([]byte(u.Passkey)); err != nil {
				return err
			}
		}
		u.Passkey = newPasskey()
		return putUser(tx, u)
	})
	return u, err
}

// RevokeUser removes the user's passkey; the user and its counts remain
// and RotateUser can issue a new passkey later.
func (s *Store) RevokeUser(name string) (User, error) {
	var u User
	err := s.db.Update(func(tx *bolt.Tx) error {
		var err error
		if u, err = getUser(tx, name); err != nil {
			return err
		}
		if u.Passkey == "" {
			return fmt.Errorf("user %q has no passkey to revoke", name)
		}
		if err := tx.Bucket(bucketPasskeys).Delete([]byte(u.Passkey)); err != nil {
			return err
		}
		u.Passkey = ""
		return putUser(tx, u)
	})
	return u, err
}

// Users returns every user, sorted by name.
func (s *Store) Users() ([]User, error) {
	var us []User
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketUsers).ForEach(func(k, v []byte) error {
			var u User
			if err := json.Unmarshal(v, &u); err != nil {
				return fmt.Errorf("user %q: %w", k, err)
			}
			us = append(us, u)
			return nil
		})
	})
	return us, err
}

func getUser(tx *bolt.Tx, name string) (User, error) {
	v := tx.Bucket(bucketUsers).Get([]byte(name))
	if v == nil {
		return User{}, fmt.Errorf("no user %q", name)
	}
	var u User
	if err := json.Unmarshal(v, &u); err != nil {
		return User{}, fmt.Errorf("user %q: %w", name, err)
	}
	return u, nil
}

func putUser(tx *bolt.Tx, u User) error {
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	if u.Passkey != "" {
		if err := tx.Bucket(bucketPasskeys).Put([]byte(u.Passkey), []byte(u.Name)); err != nil {
			return err
		}
	}
	return tx.Bucket(bucketUsers).Put([]byte(u.Name), b)
}

// addUserBytes adds traffic to users' counters in one transaction.
func (s *Store) addUserBytes(deltas map[string][2]int64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		for name, d := range deltas {
			u, err := getUser(tx, name)
			if err != nil {
				continue // deleted meanwhile
			}
			u.Uploaded += d[0]
			u.Downloaded += d[1]
			if err := putUser(tx, u); err != nil {
				return err
			}
		}
		return nil
	})
}

// completed returns the stored download count of a torrent.
func (s *Store) completed(ih [20]byte) uint64 {
	var n uint64
	s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(bucketCounts).Get(ih[:]); len(v) == 8 {
			n = binary.BigEndian.Uint64(v)
		}
		return nil
	})
	return n
}

// saveCompleted stores download counts in one transaction.
func (s *Store) saveCompleted(counts map[[20]byte]uint64) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketCounts)
		for ih, n := range counts {
			var v [8]byte
			binary.BigEndian.PutUint64(v[:], n)
			if err := b.Put(ih[:], v[:]); err != nil {
				return err
			}
		}
		return nil
	})
}

// AddTorrent stores an uploaded .torrent with its description.
func (s *Store) AddTorrent(data []byte, description string) (TorrentInfo, error) {
	mi, err := metainfo.Parse(data)
	if err != nil {
		return TorrentInfo{}, fmt.Errorf("uploaded torrent: %w", err)
	}
	if len(description) > 4096 {
		return TorrentInfo{}, fmt.Errorf("description: %d bytes is longer than 4096", len(description))
	}
	ih := mi.InfoHash
	ti := TorrentInfo{
		InfoHash:    hex.EncodeToString(ih[:]),
		Name:        mi.Info.Name,
		Size:        mi.Info.TotalLength(),
		Description: description,
		Added:       time.Now().UTC().Truncate(time.Second),
	}
	b, err := json.Marshal(ti)
	if err != nil {
		return TorrentInfo{}, err
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketFiles).Put(ih[:], bytes.Clone(data)); err != nil {
			return err
		}
		return tx.Bucket(bucketTorrents).Put(ih[:], b)
	})
	if err != nil {
		return TorrentInfo{}, fmt.Errorf("store uploaded torrent: %w", err)
	}
	return ti, nil
}

// Torrents returns the uploaded torrents, newest first.
func (s *Store) Torrents() ([]TorrentInfo, error) {
	var ts []TorrentInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTorrents).ForEach(func(k, v []byte) error {
			var t TorrentInfo
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("torrent %x: %w", k, err)
			}
			ts = append(ts, t)
			return nil
		})
	})
	sort.Slice(ts, func(i, j int) bool { return ts[i].Added.After(ts[j].Added) })
	return ts, err
}

// TorrentFile returns the uploaded .torrent of ih, or nil.
func (s *Store) TorrentFile(ih [20]byte) []byte {
	var out []byte
	s.db.View(func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket(bucketFiles).Get(ih[:]))
		return nil
	})
	return out
}

// AdminToken returns the operator's secret for the upload form, creating
// it on first use.
func (s *Store) AdminToken() (string, error) {
	var tok string
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMeta)
		if v := b.Get([]byte("admin-token")); v != nil {
			tok = string(v)
			return nil
		}
		tok = newPasskey()
		return b.Put([]byte("admin-token"), []byte(tok))
	})
	return tok, err
}

// passkeys returns passkey -> user name.
func (s *Store) passkeys() (map[string]string, error) {
	m := make(map[string]string)
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketPasskeys).ForEach(func(k, v []byte) error {
			m[string(k)] = string(v)
			return nil
		})
	})
	return m, err
}
