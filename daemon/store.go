package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bucket names of the state database. Metainfo lives apart from the
// records so that the frequent checkpoints rewrite only small values.
var (
	bucketTorrents = []byte("torrents")
	bucketMeta     = []byte("metainfo")
	bucketSession  = []byte("session")
	keySettings    = []byte("settings")
	keyNextID      = []byte("next-id")
)

// record is what the daemon remembers about one torrent across restarts.
type record struct {
	ID          int       `json:"id"`
	InfoHash    string    `json:"info_hash"`
	Name        string    `json:"name"`
	Magnet      string    `json:"magnet,omitempty"` // the link, while metadata is missing
	DownloadDir string    `json:"download_dir"`
	AddedAt     time.Time `json:"added_at"`
	DoneAt      time.Time `json:"done_at,omitzero"`
	Queue       int       `json:"queue"`
	// Priorities per file (engine.Priority values); nil means all Normal.
	Priorities    []int8  `json:"priorities,omitempty"`
	UploadLimit   int64   `json:"upload_limit,omitempty"` // bytes/s; 0 = only the global limit
	DownloadLimit int64   `json:"download_limit,omitempty"`
	RatioLimit    float64 `json:"ratio_limit,omitempty"` // 0 = session default, <0 = none
	SeedMinutes   int     `json:"seed_minutes,omitempty"`
	// Counters of earlier runs; the running engine adds its own.
	Uploaded   int64  `json:"uploaded"`
	Downloaded int64  `json:"downloaded"`
	Wasted     int64  `json:"wasted"`
	SeedSecs   int64  `json:"seed_secs"`
	Error      string `json:"error,omitempty"`
	// Have is the durable checkpoint of verified pieces: every piece in it
	// was synced to disk before the checkpoint was committed.
	Have []byte `json:"have,omitempty"`
	// HaveValid says Have was ever written (an empty Have is then "none
	// verified", not "never checked").
	HaveValid bool `json:"have_valid"`
	// Clean is true when Have is exact: the torrent stopped cleanly after
	// it was written. Otherwise pieces outside Have may be on disk and are
	// rechecked at the next start.
	Clean  bool `json:"clean"`
	Paused bool `json:"paused"`
	// SuperSeed turns on BEP 16 super-seeding while the torrent seeds.
	SuperSeed bool `json:"super_seed,omitempty"`
}

// store is the daemon's embedded transactional database (bbolt).
type store struct {
	db *bolt.DB
	// used is set by every transaction: it may have brought pages of the
	// memory-mapped file into the resident set (see release).
	used atomic.Bool
}

// view and update run a transaction and note that the map was used.
func (s *store) view(fn func(*bolt.Tx) error) error {
	s.used.Store(true)
	return s.db.View(fn)
}

func (s *store) update(fn func(*bolt.Tx) error) error {
	s.used.Store(true)
	return s.db.Update(fn)
}

// release drops the pages of the memory-mapped database file from the
// process's resident set, if a transaction may have touched any since the
// last release. bbolt reads the file through a read-only shared map, so
// every record and metainfo read while adding, loading or waking torrents
// stays mapped, and counted in the daemon's RSS, for as long as the
// process lives, growing with the number of torrents. Dropped pages stay
// in the page cache (the kernel may reclaim them) and the next read maps
// them again with a minor fault; the data are in the file, so nothing is
// lost.
func (s *store) release() error {
	if !s.used.Swap(false) {
		return nil
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		// The read transaction holds bbolt's map lock, so the map cannot
		// move (a growing write waits) while the kernel is told about it.
		// Pages at or past tx.Size() were never read through the map.
		return dropMapped(tx.DB().Info().Data, tx.Size())
	})
	if err != nil {
		return fmt.Errorf("release state database pages: %w", err)
	}
	return nil
}

func openStore(path string) (*store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, berrors.ErrTimeout) {
			return nil, fmt.Errorf("state database %s is locked: is another daemon running with the same --data?", path)
		}
		return nil, fmt.Errorf("open state database %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketTorrents, bucketMeta, bucketSession} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init state database: %w", err)
	}
	s := &store{db: db}
	s.used.Store(true) // opening read the meta pages
	return s, nil
}

func (s *store) close() error { return s.db.Close() }

// loadAll returns every torrent record with its metainfo bytes (nil for a
// magnet still waiting for metadata).
func (s *store) loadAll() ([]record, [][]byte, error) {
	var recs []record
	var metas [][]byte
	err := s.view(func(tx *bolt.Tx) error {
		mb := tx.Bucket(bucketMeta)
		return tx.Bucket(bucketTorrents).ForEach(func(k, v []byte) error {
			var r record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("torrent record %s: %w", k, err)
			}
			recs = append(recs, r)
			var m []byte
			if b := mb.Get(k); b != nil {
				m = append([]byte(nil), b...)
			}
			metas = append(metas, m)
			return nil
		})
	})
	if err != nil {
		return nil, nil, fmt.Errorf("load state: %w", err)
	}
	return recs, metas, nil
}

// put writes records (and, if meta is not nil, the first record's
// metainfo) in one transaction.
func (s *store) put(meta []byte, recs ...*record) error {
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTorrents)
		for i, r := range recs {
			v, err := json.Marshal(r)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(r.InfoHash), v); err != nil {
				return err
			}
			if i == 0 && meta != nil {
				if err := tx.Bucket(bucketMeta).Put([]byte(r.InfoHash), meta); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// getMeta returns a torrent's stored metainfo.
func (s *store) getMeta(infoHash string) ([]byte, error) {
	var m []byte
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketMeta).Get([]byte(infoHash))
		if v == nil {
			return fmt.Errorf("no metainfo stored for %s", infoHash)
		}
		m = append([]byte(nil), v...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load metainfo: %w", err)
	}
	return m, nil
}

func (s *store) delete(infoHash string) error {
	err := s.update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketTorrents).Delete([]byte(infoHash)); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Delete([]byte(infoHash))
	})
	if err != nil {
		return fmt.Errorf("delete torrent %s from state: %w", infoHash, err)
	}
	return nil
}

// nextID hands out Transmission's small integer torrent ids, never reused.
func (s *store) nextID() (int, error) {
	var id int
	err := s.update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketSession)
		if v := b.Get(keyNextID); v != nil {
			if err := json.Unmarshal(v, &id); err != nil {
				return err
			}
		}
		id++
		v, _ := json.Marshal(id)
		return b.Put(keyNextID, v)
	})
	if err != nil {
		return 0, fmt.Errorf("allocate torrent id: %w", err)
	}
	return id, nil
}

func (s *store) loadSettings(into *Settings) (bool, error) {
	found, migrated := false, false
	err := s.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketSession).Get(keySettings)
		if v == nil {
			return nil
		}
		found = true
		if err := json.Unmarshal(v, into); err != nil {
			return err
		}
		var err error
		migrated, err = migratePlainPassword(v, into)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("load settings: %w", err)
	}
	if migrated {
		if err := s.saveSettings(into); err != nil {
			return false, err
		}
	}
	return found, nil
}

func (s *store) saveSettings(st *Settings) error {
	v, err := json.Marshal(st)
	if err != nil {
		return err
	}
	err = s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSession).Put(keySettings, v) })
	if err != nil {
		return fmt.Errorf("save settings: %w", err)
	}
	return nil
}

// LoadState returns the session's saved state under key (its DHT nodes'
// ids and routing tables: session.StateStore), nil if none.
func (s *store) LoadState(key string) ([]byte, error) {
	var b []byte
	err := s.view(func(tx *bolt.Tx) error {
		b = bytes.Clone(tx.Bucket(bucketSession).Get([]byte("state:" + key)))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("load %s state: %w", key, err)
	}
	return b, nil
}

// SaveState replaces the session's saved state under key.
func (s *store) SaveState(key string, b []byte) error {
	err := s.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSession).Put([]byte("state:"+key), b) })
	if err != nil {
		return fmt.Errorf("save %s state: %w", key, err)
	}
	return nil
}
