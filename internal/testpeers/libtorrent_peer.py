"""One libtorrent peer for Sower's interop tests (started by the Go package
testpeers: libtorrent.go, and libtorrent_dht.go for trackerless tests).

Usage: libtorrent_peer.py [--peer HOST:PORT]... [--dht-bootstrap HOST:PORT]...
                          [--trackerless] [--keep-seed-connections] [--no-pex] [--utp-only]
                          [--encryption rc4|plaintext]
                          seed TORRENT SAVE_DIR | get TORRENT_OR_MAGNET SAVE_DIR

Everything listens on 127.0.0.1 at a port chosen by the system. The DHT is on
only when --dht-bootstrap is given (UDP, on the same port as TCP), and then it
only ever contacts those nodes and the nodes they name: the public routers are
never used. --keep-seed-connections keeps connections to other seeds open (a
seed then still names another seed in PEX); --no-pex leaves out ut_pex.
--utp-only turns TCP off both ways and uTP on (BEP 29, on the UDP port): peers
given with --peer are then dialled over uTP.
--encryption forces MSE (Message Stream Encryption) on every connection, in and
out, with an RC4 payload (rc4) or a plaintext one after the obfuscated handshake
(plaintext); without it the default applies (MSE tried first, plaintext accepted).

--trackerless is what the trackerless tests want: the peer also reports event
and peer lines and dht_nodes, dials its peers at once (a magnet link's metadata
comes from them) rather than after checking its data, and reacts to alerts
within 50 ms rather than polling every 100 ms, so that event times are sharp.

Events go to stdout, one per line, flushed at once:

    port N                  the TCP port (and DHT UDP port) it listens on; with
                            --utp-only its uTP (UDP) port
    status k=v ...          about twice a second: state, progress, rates, byte counts,
                            peers (and dht_nodes with --trackerless)
    event NAME SECONDS      (--trackerless) once per NAME, seconds since the torrent was added:
                              first-peer  it began to connect to a peer of the torrent (not itself)
                              metadata    the info dictionary is in (magnet links)
                              dht-reply   a DHT lookup for the torrent, which also announces it, ended
                              dht-peers   a DHT get_peers lookup returned peers
    peer IP:PORT PEER_ID    (--trackerless) each peer connection not seen before, peer id in hex
    complete                once, when every piece is present and hash-checked
    error TEXT              something the test must hear about (bad data, disk, listen)
    alert NAME: TEXT        other libtorrent events, for the log only

It dials every --peer, and every HOST:PORT given later on stdin as "connect HOST:PORT",
retrying until the peer has been connected once. It exits when stdin reaches end of file
or on SIGTERM.
"""

import signal
import sys
import threading
import time
import warnings

import libtorrent as lt


def say(*words):
    print(*words, flush=True)


def split_addr(addr):
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError("bad address %r: want HOST:PORT" % addr)
    return host.strip("[]"), int(port)


class Options:
    """The command line."""

    def __init__(self, argv):
        self.peers = []
        self.bootstrap = []
        self.trackerless = False
        self.keep_seeds = False
        self.pex = True
        self.utp_only = False
        self.encryption = None
        i = 0
        while i < len(argv) and argv[i].startswith("--"):
            flag = argv[i]
            if flag == "--trackerless":
                self.trackerless = True
            elif flag == "--keep-seed-connections":
                self.keep_seeds = True
            elif flag == "--no-pex":
                self.pex = False
            elif flag == "--utp-only":
                self.utp_only = True
            elif flag == "--encryption":
                if i + 1 >= len(argv) or argv[i + 1] not in ("rc4", "plaintext"):
                    sys.exit("--encryption needs rc4 or plaintext")
                i += 1
                self.encryption = argv[i]
            elif flag in ("--peer", "--dht-bootstrap"):
                if i + 1 >= len(argv):
                    sys.exit("%s needs a value" % flag)
                i += 1
                (self.peers if flag == "--peer" else self.bootstrap).append(argv[i])
            else:
                sys.exit("unknown flag %s" % flag)
            i += 1
        rest = argv[i:]
        if len(rest) != 3 or rest[0] not in ("seed", "get"):
            sys.exit(__doc__)
        self.mode, self.source, self.save_dir = rest
        for addr in self.bootstrap:
            split_addr(addr)
        # Without a node to start from libtorrent would find no one, and it
        # must never fall back on the public routers.
        self.dht = bool(self.bootstrap)


def session_settings(opts):
    mask = (lt.alert_category.error
            | lt.alert_category.status
            | lt.alert_category.storage
            | lt.alert_category.connect)
    if opts.trackerless:
        mask |= lt.alert_category.dht | lt.alert_category.dht_operation
    else:
        mask |= lt.alert_category.tracker
    settings = {
        # libtorrent closes connections between two seeds by default; a PEX
        # test keeps them so that a seed can tell others about another seed.
        "close_redundant_connections": not opts.keep_seeds,
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "",
        # Every peer in a test shares 127.0.0.1.
        "allow_multiple_connections_per_ip": True,
        # Nothing may leave the machine or find peers by itself. The DHT
        # reaches only the given loopback nodes: no public router, and the
        # checks that would drop loopback nodes and 127.0.0.1 neighbours are off.
        "enable_dht": opts.dht,
        "dht_bootstrap_nodes": ",".join(opts.bootstrap),
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False,
        "dht_prefer_verified_node_ids": False,
        "dht_enforce_node_id": False,
        # Every node of the test shares 127.0.0.1: no per-IP blocking.
        "dht_block_ratelimit": 100000,
        "dht_upload_rate_limit": 1 << 20,  # 0 crashes libtorrent 2.0.8 (division by zero)
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # TCP only, the common ground of every client in the tests, unless
        # the test is about uTP.
        "enable_outgoing_utp": opts.utp_only,
        "enable_incoming_utp": opts.utp_only,
        "enable_outgoing_tcp": not opts.utp_only,
        "enable_incoming_tcp": not opts.utp_only,
        # No rate limit anywhere, so benchmarks measure the real speed.
        "upload_rate_limit": 0,
        "download_rate_limit": 0,
        "rate_limit_ip_overhead": False,
        "alert_mask": mask,
    }
    if opts.encryption:
        settings["out_enc_policy"] = int(lt.enc_policy.forced)
        settings["in_enc_policy"] = int(lt.enc_policy.forced)
        level = lt.enc_level.rc4 if opts.encryption == "rc4" else lt.enc_level.plaintext
        settings["allowed_enc_level"] = int(level)
        settings["prefer_rc4"] = opts.encryption == "rc4"
    return settings


def start_session(opts):
    if opts.pex:
        ses = lt.session(session_settings(opts))
    else:
        # The default plugins less ut_pex: this peer learns of no one.
        ses = lt.session(session_settings(opts), flags=0)
        ses.add_extension("ut_metadata")
        ses.add_extension("smart_ban")
    classes = [ses.global_peer_class_id, ses.local_peer_class_id, ses.tcp_peer_class_id]
    if hasattr(ses, "utp_peer_class_id"):
        classes.append(ses.utp_peer_class_id)
    for cls in classes:
        info = ses.get_peer_class(cls)
        info["upload_limit"] = 0
        info["download_limit"] = 0
        ses.set_peer_class(cls, info)
    return ses


class Dialer:
    """Dials the wanted peers until each has been connected once."""

    def __init__(self, handle):
        self.handle = handle
        self.lock = threading.Lock()
        self.pending = {}  # (host, port) -> time of the last attempt

    def want(self, addr):
        try:
            endpoint = split_addr(addr)
        except ValueError as err:
            say("error", err)
            return
        with self.lock:
            self.pending[endpoint] = 0.0

    def tick(self, peers):
        connected = {(p.ip[0], p.ip[1]) for p in peers}
        now = time.monotonic()
        with self.lock:
            for endpoint, last in list(self.pending.items()):
                if endpoint in connected:
                    del self.pending[endpoint]
                    say("alert dialer: connected to %s:%d" % endpoint)
                elif now - last >= 2.0:
                    self.pending[endpoint] = now
                    self.handle.connect_peer(endpoint)


def read_commands(dialer, stop):
    for line in sys.stdin:
        words = line.split()
        if len(words) == 2 and words[0] == "connect":
            dialer.want(words[1])
        elif words:
            say("error unknown command %r" % line.strip())
    stop.set()


def main():
    # session.status() is deprecated but the only way to read dht_nodes in 2.0.
    warnings.simplefilter("ignore", DeprecationWarning)
    opts = Options(sys.argv[1:])

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    ses = start_session(opts)
    if opts.source.startswith("magnet:"):
        params = lt.parse_magnet_uri(opts.source)
    else:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(opts.source)
    params.save_path = opts.save_dir
    # Not auto-managed: no queueing, and seeding never stops at a ratio.
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    added = time.monotonic()
    handle = ses.add_torrent(params)

    dialer = Dialer(handle)
    for addr in opts.peers:
        dialer.want(addr)
    threading.Thread(target=read_commands, args=(dialer, stop), daemon=True).start()

    told = set()

    def event(name):
        if opts.trackerless and name not in told:
            told.add(name)
            say("event %s %.6f" % (name, time.monotonic() - added))

    pause = 0.05 if opts.trackerless else 0.1
    seen_peers = set()
    port_told = False
    listen_port = 0
    complete_told = False
    checked = False
    last_error = ""
    last_status = 0.0
    while not stop.is_set():
        for alert in ses.pop_alerts():
            name = type(alert).__name__
            if isinstance(alert, lt.listen_succeeded_alert):
                want = ((lt.socket_type_t.utp, lt.socket_type_t.udp) if opts.utp_only
                        else (lt.socket_type_t.tcp,))
                if not port_told and alert.socket_type in want:
                    say("port", alert.port)
                    listen_port = alert.port
                    port_told = True
            elif isinstance(alert, (lt.listen_failed_alert, lt.torrent_error_alert,
                                    lt.file_error_alert, lt.metadata_failed_alert)):
                say("error", name + ":", alert.message())
            elif isinstance(alert, (lt.dht_log_alert, lt.dht_pkt_alert)):
                pass
            else:
                if isinstance(alert, lt.peer_connect_alert):
                    # A DHT lookup may return our own announce: that is no peer.
                    if alert.endpoint[1] != listen_port:
                        event("first-peer")
                elif isinstance(alert, lt.metadata_received_alert):
                    event("metadata")
                elif isinstance(alert, lt.dht_reply_alert):
                    event("dht-reply")
                    if alert.num_peers > 0:
                        event("dht-peers")
                elif isinstance(alert, lt.torrent_checked_alert):
                    checked = True
                say("alert", name + ":", alert.message())

        st = handle.status()
        ready = checked and st.has_metadata and st.state not in (
            lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)
        if opts.trackerless or ready:
            peer_list = handle.get_peer_info()
            if opts.trackerless:
                for p in peer_list:
                    key = (p.ip[0], p.ip[1], str(p.pid))
                    if key not in seen_peers:
                        seen_peers.add(key)
                        say("peer %s:%d %s" % (p.ip[0], p.ip[1], p.pid.to_bytes().hex()))
            dialer.tick(peer_list)

        now = time.monotonic()
        complete_now = ready and not complete_told and st.is_seeding
        if now - last_status >= 0.5 or complete_now:
            last_status = now
            line = ("status state=%s done=%d total=%d down_rate=%d up_rate=%d downloaded=%d "
                    "uploaded=%d peers=%d seeds=%d" % (
                        str(st.state), st.total_wanted_done, st.total_wanted,
                        st.download_payload_rate, st.upload_payload_rate,
                        st.total_payload_download, st.total_payload_upload,
                        st.num_peers, st.num_seeds))
            if opts.trackerless:
                line += " dht_nodes=%d" % ses.status().dht_nodes
            say(line)
        if st.errc.value() != 0:
            if st.errc.message() != last_error:
                last_error = st.errc.message()
                say("error torrent:", last_error)
            stop.wait(pause)
            continue
        if ready and not complete_told:
            if complete_now:
                say("complete")
                complete_told = True
            elif opts.mode == "seed":
                say("error seed data incomplete after checking: progress=%.6f" % st.progress)
                complete_told = True
        if opts.trackerless:
            ses.wait_for_alert(50)
        else:
            stop.wait(pause)

    ses.pause()
    say("alert stopping")


if __name__ == "__main__":
    main()
