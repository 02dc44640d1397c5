// Package testpeers starts real third-party BitTorrent programs on
// 127.0.0.1 for tests: Sower's interop tests and benchmarks run against
// them rather than against Sower itself.
//
// # Use
//
// Every helper takes the test's testing.TB, runs the program in its own
// process group with its output in a log file under t.TempDir, and stops it
// (then removes its files) when the test ends; a failed test shows the last
// lines of every log (set TESTPEERS_VERBOSE=1 to see them always). Every
// wait is bounded. A helper skips the test when its program is not
// installed ("aria2c not installed: run scripts/test.sh to install it");
// with TESTPEERS_REQUIRE=1, as scripts/test.sh sets, it fails instead.
//
//	tr := testpeers.StartOpentracker(t)
//	torrent := testpeers.Mktorrent(t, file, tr.AnnounceURL, 256<<10)
//	tr.Allow(t, testpeers.InfoHash(t, torrent))
//	seed := testpeers.Aria2Seed(t, torrent, dataDir)
//	get := testpeers.LibtorrentGet(t, torrent, outDir, seed.Addr())
//	if err := get.Wait(ctx); err != nil { ... }
//	testpeers.SameTree(t, file, filepath.Join(outDir, filepath.Base(file)))
//
// A Peer listens at Peer.Addr (127.0.0.1:Port) and has one torrent.
// Peer.Wait returns when the program holds all of it, checked against the
// piece hashes by the program itself (a seeder: once its start-up check is
// done); Peer.Stats reports bytes moved, for benchmarks. Leechers keep
// running after completion until Peer.Stop or the end of the test
// (libtorrent and Transmission keep seeding; aria2c stops sharing). Peers
// given as host:port are dialled: libtorrent dials them itself (and
// Peer.Connect adds more later, for a Sower that starts after it); aria2c
// cannot be told to dial a peer, so it gets them from a tiny HTTP tracker in
// the test process; Transmission cannot reach them at all (see below).
//
// # What was found to work (Debian 12: aria2 1.36.0, python3-libtorrent
// 2.0.8, transmission 3.00, opentracker git20210823, mktorrent 1.1)
//
//   - aria2c and libtorrent exchange data in both directions, found through
//     opentracker or given directly, single- and multi-file torrents.
//   - Transmission accepts peers that dial it on 127.0.0.1 and serves or
//     fetches through them, but never dials a 127.0.0.1 peer (it counts
//     loopback among the "martian" addresses it will not connect to, whether a tracker or
//     anything else names it): the other side must dial Peer.Port. It
//     unchokes a newly connected peer only at its next rechoke, up to 10 s
//     later, so even a few MiB take ~15 s with it on either side.
//   - libtorrent's first dial to a peer uses an encrypted (MSE) handshake and
//     it retries in plaintext if the peer closes the connection: a peer
//     without MSE sees one garbage handshake first. Encryption is left at
//     every program's default; all of them accept plaintext.
//   - libtorrent puts loopback peers in its "local" peer class, which ignores
//     unchoke slots: a libtorrent seed unchokes every test peer at once.
//     Its rate limits (global, local and TCP peer classes, IP overhead) are
//     all off, and uTP is off (TCP only) for it and for Transmission.
//   - opentracker (Debian) tracks only whitelisted torrents: Tracker.Allow
//     adds one and returns once opentracker has reloaded. Announces with
//     event=stopped are answered whatever the whitelist says.
//
// Ports come from FreePort (random, checked free on TCP and UDP) except
// libtorrent's, which binds port 0 and reports the port it got.
package testpeers
