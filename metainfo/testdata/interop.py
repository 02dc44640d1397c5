"""Helper for metainfo's interop tests, driving python3-libtorrent.

  interop.py create PATH PIECE_LENGTH OUT   make a v1-only torrent, print its info-hash
  interop.py show TORRENT                   print a JSON summary of a torrent as libtorrent reads it
"""
import json
import os
import sys

import libtorrent as lt


def create(path, piece_length, out):
    fs = lt.file_storage()
    lt.add_files(fs, path)
    ct = lt.create_torrent(fs, piece_length, flags=lt.create_torrent.v1_only)
    ct.add_tracker("http://127.0.0.1:6969/announce", 0)
    lt.set_piece_hashes(ct, os.path.dirname(os.path.abspath(path)))
    with open(out, "wb") as f:
        f.write(lt.bencode(ct.generate()))
    print(str(lt.torrent_info(out).info_hashes().v1))


def show(torrent):
    ti = lt.torrent_info(torrent)
    fs = ti.files()
    files = []
    for i in range(fs.num_files()):
        pad = bool(fs.file_flags(i) & lt.file_storage.flag_pad_file)
        files.append({"path": fs.file_path(i).replace(os.sep, "/"), "size": fs.file_size(i), "pad": pad})
    print(json.dumps({
        "info_hash": str(ti.info_hashes().v1),
        "name": ti.name(),
        "piece_length": ti.piece_length(),
        "num_pieces": ti.num_pieces(),
        "total_size": ti.total_size(),
        "private": ti.priv(),
        "files": files,
        "trackers": [t.url for t in ti.trackers()],
        "web_seeds": [w["url"] for w in ti.web_seeds()],
    }))


if __name__ == "__main__":
    if sys.argv[1] == "create":
        create(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif sys.argv[1] == "show":
        show(sys.argv[2])
    else:
        sys.exit("unknown command " + sys.argv[1])
