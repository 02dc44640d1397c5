"""One libtorrent client in a WAN lab host (started by bench/wan's Go driver).

Usage: lt_node.py TORRENT SAVE_DIR PORT

It listens on 0.0.0.0:PORT (TCP and uTP) and finds peers through the
torrent's tracker. Lines on stdin, answered on stdout:

    start            add the torrent (a seed checks its data first)
    pause / resume   leave the swarm (peers disconnected) / come back
    stats N          -> "stats N have=F complete=0|1 up=B down=B" (payload bytes
                        since the torrent was added, pauses included)
    (end of file)    exit

"ready" on stdout says the session is listening; "error TEXT" reports a
failure the benchmark must hear about.

libtorrent puts private addresses (the lab's) in its "local" peer class,
which ignores unchoke slots and rate limits; every address is put in the
global class instead so it behaves as on the internet.
"""

import sys
import threading

import libtorrent as lt


def say(*words):
    print(*words, flush=True)


def main():
    torrent, save_dir, port = sys.argv[1:4]
    ses = lt.session({
        "listen_interfaces": "0.0.0.0:%s" % port,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "alert_mask": lt.alert_category.error | lt.alert_category.status,
    })
    everyone = lt.ip_filter()
    everyone.add_rule("0.0.0.0", "255.255.255.255", 1 << ses.global_peer_class_id)
    ses.set_peer_class_filter(everyone)

    commands = []
    cond = threading.Condition()

    def read_commands():
        for line in sys.stdin:
            with cond:
                commands.append(line.split())
        with cond:
            commands.append(["exit"])

    threading.Thread(target=read_commands, daemon=True).start()
    say("ready")
    handle = None
    while True:
        ses.wait_for_alert(50)
        for alert in ses.pop_alerts():
            if isinstance(alert, (lt.listen_failed_alert, lt.torrent_error_alert, lt.file_error_alert)):
                say("error", type(alert).__name__ + ":", alert.message())
        with cond:
            todo, commands[:] = list(commands), []
        for words in todo:
            if words == ["exit"]:
                if handle is not None:
                    ses.remove_torrent(handle)
                return
            if words == ["start"] and handle is None:
                params = lt.add_torrent_params()
                params.ti = lt.torrent_info(torrent)
                params.save_path = save_dir
                params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
                handle = ses.add_torrent(params)
            elif words == ["pause"] and handle is not None:
                handle.pause()
            elif words == ["resume"] and handle is not None:
                handle.resume()
            elif len(words) == 2 and words[0] == "stats":
                if handle is None:
                    say("stats", words[1], "have=0 complete=0 up=0 down=0")
                    continue
                st = handle.status()
                checking = st.state in (lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)
                complete = st.is_seeding and not checking
                say("stats", words[1], "have=%.6f complete=%d up=%d down=%d" % (
                    st.progress, 1 if complete else 0, st.all_time_upload, st.all_time_download))
            else:
                say("error unknown command %r" % " ".join(words))


if __name__ == "__main__":
    main()
