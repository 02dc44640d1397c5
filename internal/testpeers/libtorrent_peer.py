"""One libtorrent peer for Sower's interop tests (started by the Go package testpeers).

Usage: libtorrent_peer.py seed|get TORRENT SAVE_DIR [HOST:PORT ...]

It listens on 127.0.0.1 at a port chosen by the system and reports on stdout,
one event per line, flushed at once:

    port N                  the TCP port it listens on
    status k=v ...          about twice a second: state, progress, rates, byte counts, peers
    complete                once, when every piece is present and hash-checked
    error TEXT              something the test must hear about (bad data, disk, listen)
    alert NAME: TEXT        other libtorrent events, for the log only

It dials every HOST:PORT given on the command line or later on stdin as
"connect HOST:PORT", retrying until the peer has been connected once.
It exits when stdin reaches end of file or on SIGTERM.
"""

import signal
import sys
import threading
import time

import libtorrent as lt


def say(*words):
    print(*words, flush=True)


def split_addr(addr):
    host, sep, port = addr.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ValueError("bad peer address %r: want HOST:PORT" % addr)
    return host.strip("[]"), int(port)


def session_settings():
    return {
        "listen_interfaces": "127.0.0.1:0",
        "outgoing_interfaces": "",
        # Every peer in a test shares 127.0.0.1.
        "allow_multiple_connections_per_ip": True,
        # Nothing may leave the machine or find peers by itself.
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # TCP only: the common ground of every client in the tests.
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        # No rate limit anywhere, so benchmarks measure the real speed.
        "upload_rate_limit": 0,
        "download_rate_limit": 0,
        "rate_limit_ip_overhead": False,
        "alert_mask": (
            lt.alert_category.error
            | lt.alert_category.status
            | lt.alert_category.storage
            | lt.alert_category.connect
            | lt.alert_category.tracker
        ),
    }


def unlimit_peer_classes(ses):
    for cls in (ses.global_peer_class_id, ses.local_peer_class_id, ses.tcp_peer_class_id):
        info = ses.get_peer_class(cls)
        info["upload_limit"] = 0
        info["download_limit"] = 0
        ses.set_peer_class(cls, info)


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

    def tick(self, ready):
        if not ready:
            return
        connected = {(p.ip[0], p.ip[1]) for p in self.handle.get_peer_info()}
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
    if len(sys.argv) < 4 or sys.argv[1] not in ("seed", "get"):
        sys.exit("usage: libtorrent_peer.py seed|get TORRENT SAVE_DIR [HOST:PORT ...]")
    mode, torrent, save_dir = sys.argv[1:4]

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    ses = lt.session(session_settings())
    unlimit_peer_classes(ses)

    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = save_dir
    # Not auto-managed: no queueing, and seeding never stops at a ratio.
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    handle = ses.add_torrent(params)

    dialer = Dialer(handle)
    for addr in sys.argv[4:]:
        dialer.want(addr)
    threading.Thread(target=read_commands, args=(dialer, stop), daemon=True).start()

    port_told = False
    complete_told = False
    checked = False
    last_error = ""
    last_status = 0.0
    while not stop.is_set():
        for alert in ses.pop_alerts():
            name = type(alert).__name__
            if isinstance(alert, lt.listen_succeeded_alert):
                if not port_told and alert.socket_type == lt.socket_type_t.tcp:
                    say("port", alert.port)
                    port_told = True
            elif isinstance(alert, (lt.listen_failed_alert, lt.torrent_error_alert,
                                    lt.file_error_alert, lt.metadata_failed_alert)):
                say("error", name + ":", alert.message())
            elif isinstance(alert, lt.torrent_checked_alert):
                checked = True
                say("alert", name + ":", alert.message())
            elif isinstance(alert, lt.hash_failed_alert):
                say("alert", name + ":", alert.message())
            else:
                say("alert", name + ":", alert.message())

        st = handle.status()
        ready = checked and st.state not in (
            lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)
        dialer.tick(ready)

        now = time.monotonic()
        complete_now = ready and not complete_told and st.is_seeding
        if now - last_status >= 0.5 or complete_now:
            last_status = now
            say("status state=%s done=%d total=%d down_rate=%d up_rate=%d downloaded=%d "
                "uploaded=%d peers=%d seeds=%d" % (
                    str(st.state), st.total_wanted_done, st.total_wanted, st.download_payload_rate,
                    st.upload_payload_rate, st.total_payload_download, st.total_payload_upload,
                    st.num_peers, st.num_seeds))
        if st.errc.value() != 0:
            if st.errc.message() != last_error:
                last_error = st.errc.message()
                say("error torrent:", last_error)
            stop.wait(0.1)
            continue
        if ready and not complete_told:
            if complete_now:
                say("complete")
                complete_told = True
            elif mode == "seed":
                say("error seed data incomplete after checking: progress=%.6f" % st.progress)
                complete_told = True
        stop.wait(0.1)

    ses.pause()
    say("alert stopping")


if __name__ == "__main__":
    main()
