// Package trackerless holds Sower's interoperability tests for trackerless
// operation (issue 6): magnet links resolved through the Mainline DHT
// (BEP 5), metadata exchange (BEP 9/10) and peer exchange (BEP 11) between
// the real sower binary and libtorrent (python3-libtorrent), all on
// 127.0.0.1.
//
// Every DHT in these tests is private to the test: a standalone `sower dht`
// node on 127.0.0.1 (rate limits off, as every node shares one IP) is the
// only bootstrap node of every participant, and sower is always given
// --dht-bootstrap or --no-dht so that it never contacts the public routers.
//
// The package has no code of its own, only tests and one benchmark
// (BenchmarkMagnet, time to first peer and to metadata, Sower against
// libtorrent). Tests skip when libtorrent is missing unless
// TESTPEERS_REQUIRE=1; SOWER_INTEROP_VERBOSE=1 shows sower's logs of
// passing tests too.
package trackerless
