#!/usr/bin/python3
"""lt_get.py TORRENT OUTDIR TIMEOUT: download TORRENT into OUTDIR with
python3-libtorrent from the sources the .torrent names (its url-list web
seeds here; it has no tracker), then exit 0 once every piece is in and
hash-checked. Exits 1 on a torrent error or after TIMEOUT seconds.

Used by bench/webseed.sh. Only loopback: DHT, local peer discovery, UPnP
and NAT-PMP are off and the listening socket is on 127.0.0.1.
"""
import sys
import time

import libtorrent as lt


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    torrent, out, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
    ses = lt.session({
        "listen_interfaces": "127.0.0.1:0",
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "alert_mask": lt.alert.category_t.error_notification,
    })
    handle = ses.add_torrent({"ti": lt.torrent_info(torrent), "save_path": out})
    deadline = time.monotonic() + timeout
    while True:
        st = handle.status()
        if st.errc.value() != 0:
            sys.exit("libtorrent: torrent error: %s" % st.errc.message())
        if st.is_seeding:
            print("complete: %d payload bytes downloaded, %d wasted"
                  % (st.total_payload_download, st.total_failed_bytes + st.total_redundant_bytes))
            return
        if time.monotonic() > deadline:
            sys.exit("libtorrent: not complete after %gs: %d of %d bytes"
                     % (timeout, st.total_done, st.total_wanted))
        for a in ses.pop_alerts():
            print("libtorrent:", a.message(), file=sys.stderr)
        time.sleep(0.05)


if __name__ == "__main__":
    main()
