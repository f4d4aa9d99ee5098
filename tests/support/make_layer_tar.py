#!/usr/bin/env python3
"""Write a layer tar from a JSON list of entries, with Python's tarfile: an independent writer
for the entries GNU tar does not make from a tree (whiteouts, `..` paths, pax records).

usage: make_layer_tar.py FORMAT OUT.tar ENTRIES.json     (FORMAT: pax, gnu or ustar)

An entry: {"name", "type": file|dir|symlink|hardlink|fifo|char|block or a one-letter tar type,
"data", "mode", "uid", "gid", "mtime", "linkname", "devmajor", "devminor", "pax": {key: value}}.
"""
import io
import json
import sys
import tarfile

TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
}
FORMATS = {"pax": tarfile.PAX_FORMAT, "gnu": tarfile.GNU_FORMAT, "ustar": tarfile.USTAR_FORMAT}


def main():
    layer_format, out, entries = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3]))
    with tarfile.open(out, "w", format=FORMATS[layer_format]) as tar:
        for entry in entries:
            info = tarfile.TarInfo(entry["name"])
            kind = entry.get("type", "file")
            info.type = TYPES.get(kind, kind.encode())
            info.mode = entry.get("mode", 0o755 if kind == "dir" else 0o644)
            info.uid = entry.get("uid", 0)
            info.gid = entry.get("gid", 0)
            info.mtime = entry.get("mtime", 1700000000)
            info.linkname = entry.get("linkname", "")
            info.devmajor = entry.get("devmajor", 0)
            info.devminor = entry.get("devminor", 0)
            info.pax_headers = entry.get("pax", {})
            data = entry.get("data", "").encode()
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data else None)


main()
