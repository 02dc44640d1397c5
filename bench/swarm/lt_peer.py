"""One libtorrent peer for Sower's swarm benchmark (bench/swarm, started by its Go driver).

Usage: lt_peer.py seed|get TORRENT SAVE_DIR UPLOAD_LIMIT SUPER_SEED(0|1)

It listens on 127.0.0.1 at a port chosen by the system. Lines on stdout:

    port N              the TCP port it listens on
    ready               the data was checked (a seed holds it all); waiting for peers
    complete T          every piece present and hash-checked, at wall-clock time T (seconds)
    stats k=v ...       answer to "stats": payload up/down, redundant and failed bytes
    error TEXT          something the benchmark must hear about

Lines on stdin:

    connect HOST:PORT   dial this peer now and again every few seconds until connected
    stats               print a stats line
    (end of file)       exit

Rate limits apply to loopback peers too: every address is put in the global
peer class (libtorrent's default puts 127.0.0.1 in a "local" class that
ignores rate limits and unchoke slots), so the seed's limit and its unchoke
slots behave as they would on the internet.
"""

import sys
import threading
import time

import libtorrent as lt


def say(*words):
    print(*words, flush=True)


def main():
    mode, torrent, save_dir, limit, super_seed = sys.argv[1:6]
    limit = int(limit)
    settings = {
        "listen_interfaces": "127.0.0.1:0",
        "allow_multiple_connections_per_ip": True,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "upload_rate_limit": limit,
        "download_rate_limit": 0,
        "rate_limit_ip_overhead": False,
        "alert_mask": lt.alert_category.error | lt.alert_category.status,
    }
    ses = lt.session(settings)
    # Every address in the global class only: loopback is not "local".
    everyone = lt.ip_filter()
    everyone.add_rule("0.0.0.0", "255.255.255.255", 1 << ses.global_peer_class_id)
    ses.set_peer_class_filter(everyone)

    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = save_dir
    params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
    if super_seed == "1":
        params.flags |= lt.torrent_flags.super_seeding
    handle = ses.add_torrent(params)
    if limit > 0:
        handle.set_upload_limit(limit)

    lock = threading.Lock()
    wanted = {}  # (host, port) -> time of the last dial
    stats_asked = threading.Event()
    stop = threading.Event()

    def read_commands():
        for line in sys.stdin:
            words = line.split()
            if len(words) == 2 and words[0] == "connect":
                host, _, port = words[1].rpartition(":")
                with lock:
                    wanted[(host, int(port))] = 0.0
            elif words == ["stats"]:
                stats_asked.set()
            elif words:
                say("error unknown command %r" % line.strip())
        stop.set()

    threading.Thread(target=read_commands, daemon=True).start()

    port_told = ready_told = complete_told = False
    while not stop.is_set():
        ses.wait_for_alert(20)
        for alert in ses.pop_alerts():
            if isinstance(alert, lt.listen_succeeded_alert):
                if not port_told and alert.socket_type == lt.socket_type_t.tcp:
                    say("port", alert.port)
                    port_told = True
            elif isinstance(alert, (lt.listen_failed_alert, lt.torrent_error_alert, lt.file_error_alert)):
                say("error", type(alert).__name__ + ":", alert.message())
        st = handle.status()
        checking = st.state in (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)
        if not checking and not ready_told and port_told:
            if mode == "seed" and not st.is_seeding:
                say("error seed data incomplete after checking: progress=%.6f" % st.progress)
            say("ready")
            ready_told = True
        if ready_told and mode == "get" and not complete_told and st.is_seeding:
            say("complete %.6f" % time.time())
            complete_told = True
        with lock:
            if ready_told and wanted and not (mode == "get" and complete_told):
                now = time.monotonic()
                connected = {(p.ip[0], p.ip[1]) for p in handle.get_peer_info()}
                for endpoint, last in list(wanted.items()):
                    if endpoint in connected:
                        del wanted[endpoint]
                    elif now - last >= 2.0:
                        wanted[endpoint] = now
                        handle.connect_peer(endpoint)
        if stats_asked.is_set():
            stats_asked.clear()
            say("stats uploaded=%d downloaded=%d redundant=%d failed=%d peers=%d" % (
                st.total_payload_upload, st.total_payload_download, st.total_redundant_bytes,
                st.total_failed_bytes, st.num_peers))
    ses.pause()


if __name__ == "__main__":
    main()
