// Package webseeds holds the interoperability tests of Sower's web seed
// support (BEP 19 url-list): the real sower binary, run as a subprocess,
// downloads torrents whose data a real nginx serves on 127.0.0.1, alone
// and side by side with Sower and aria2 peers, and against web seeds that
// misbehave (wrong data, missing files, Range ignored, redirect loops,
// servers that never answer).
//
// The package has no code of its own, only tests. They skip when nginx
// or aria2 is missing, unless TESTPEERS_REQUIRE=1 (scripts/test.sh) makes
// that a failure. Set SOWER_INTEROP_VERBOSE=1 to see every sower log even
// for passing tests.
package webseeds
