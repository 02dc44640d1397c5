#!/usr/bin/python3
"""Helpers for bench/transfer.sh.

  peer.py tracker PORT SEED_PORT   HTTP tracker on 127.0.0.1:PORT that answers
                                   every announce with 127.0.0.1:SEED_PORT
  peer.py lt-seed TORRENT DIR PORT libtorrent seeding DIR (no re-check)
  peer.py lt-get TORRENT DIR PORT  libtorrent downloading into DIR; exits 0
                                   once every piece is in and verified
  ... lt-seed|lt-get TORRENT DIR PORT ENC   with encryption ENC: rc4 (MSE with
                                   RC4 forced in and out), plain (MSE disabled)
                                   or default (libtorrent's own policy)

Debian's python3-libtorrent is only importable from /usr/bin/python3.
"""
import http.server
import signal
import socket
import struct
import sys
import time


def tracker(port, seed_port):
    peers = socket.inet_aton("127.0.0.1") + struct.pack(">H", seed_port)
    body = b"d8:intervali1800e5:peers6:" + peers + b"e"

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except ConnectionError:
                pass  # a client that hangs up early (e.g. on exit) is no error

        def log_message(self, *args):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    srv.serve_forever()


def session(port, enc="default"):
    import libtorrent as lt

    settings = {
        "listen_interfaces": "127.0.0.1:%d" % port,
        "allow_multiple_connections_per_ip": True,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "upload_rate_limit": 0,
        "download_rate_limit": 0,
        "rate_limit_ip_overhead": False,
    }
    if enc == "rc4":
        settings["out_enc_policy"] = int(lt.enc_policy.forced)
        settings["in_enc_policy"] = int(lt.enc_policy.forced)
        settings["allowed_enc_level"] = int(lt.enc_level.rc4)
        settings["prefer_rc4"] = True
    elif enc == "plain":
        settings["out_enc_policy"] = int(lt.enc_policy.disabled)
        settings["in_enc_policy"] = int(lt.enc_policy.disabled)
    ses = lt.session(settings)
    for cls in (ses.global_peer_class_id, ses.local_peer_class_id, ses.tcp_peer_class_id):
        info = ses.get_peer_class(cls)
        info["upload_limit"] = 0
        info["download_limit"] = 0
        ses.set_peer_class(cls, info)
    return lt, ses


def lt_peer(mode, torrent, folder, port, enc="default"):
    lt, ses = session(port, enc)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = folder
    if mode == "lt-seed":
        params.flags |= lt.torrent_flags.seed_mode
    h = ses.add_torrent(params)
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    while not stop:
        st = h.status()
        if st.errc.value() != 0:
            print("libtorrent error:", st.errc.message(), file=sys.stderr)
            return 1
        if mode == "lt-get" and st.is_seeding:
            return 0
        time.sleep(0.05)
    return 0 if mode == "lt-seed" else 1


def main(argv):
    if len(argv) == 4 and argv[1] == "tracker":
        tracker(int(argv[2]), int(argv[3]))
        return 0
    if len(argv) in (5, 6) and argv[1] in ("lt-seed", "lt-get"):
        enc = argv[5] if len(argv) == 6 else "default"
        if enc not in ("rc4", "plain", "default"):
            print("encryption must be rc4, plain or default", file=sys.stderr)
            return 2
        return lt_peer(argv[1], argv[2], argv[3], int(argv[4]), enc)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
