// Package interop holds Sower's interoperability tests: the real sower
// binary, run as a subprocess exactly as users run it, exchanges torrents
// with third-party clients (aria2, libtorrent, Transmission) and a real
// tracker (opentracker) on 127.0.0.1, all started by internal/testpeers.
//
// The package has no code of its own, only tests; they are slow (minutes)
// because they move tens of MiB through real programs. They skip when a
// program is missing, unless TESTPEERS_REQUIRE=1 (scripts/test.sh) makes
// that a failure. Set SOWER_INTEROP_VERBOSE=1 to see every sower log even
// for passing tests.
package interop
