"""scripts/prepare_gettext.py on a fake locale folder: .mo catalogs written here in GNU's binary format."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from scripts import prepare_gettext


def write_mo(path: Path, messages: dict[str, str]) -> None:
    """A GNU .mo file (magic, revision 0, N, table offsets, then the strings), as msgfmt writes it."""
    keys = sorted(messages)
    ids = b"".join(k.encode() + b"\0" for k in keys)
    strs = b"".join(messages[k].encode() + b"\0" for k in keys)
    n, header = len(keys), 7 * 4
    start = header + 16 * n
    id_table, str_table, off = [], [], 0
    for k in keys:
        id_table += [len(k.encode()), start + off]
        off += len(k.encode()) + 1
    off = 0
    for k in keys:
        str_table += [len(messages[k].encode()), start + len(ids) + off]
        off += len(messages[k].encode()) + 1
    data = struct.pack("Iiiiiii", 0x950412DE, 0, n, header, header + 8 * n, 0, 0)
    data += struct.pack(f"{2 * n}i", *id_table) + struct.pack(f"{2 * n}i", *str_table) + ids + strs
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def test_prepare_gettext_builds_disjoint_splits(tmp_path, capsys):
    locale = tmp_path / "locale"
    messages = {f"could not open file number {i}": f"Datei Nummer {i} konnte nicht geöffnet werden" for i in range(40)}
    messages.update({"": "Content-Type: text/plain; charset=UTF-8\n", "ok": "OK", "same text here": "same text here",
                     "menu\x04open the file now": "die Datei jetzt öffnen"})  # fmt: skip
    write_mo(locale / "de" / "LC_MESSAGES" / "coreutils.mo", messages)
    write_mo(locale / "de" / "LC_MESSAGES" / "git.mo", {"could not open file number 1": "anders übersetzt"})
    write_mo(locale / "de" / "LC_MESSAGES" / "not-in-the-list.mo", {"an unlisted domain here": "nicht gelesen"})
    out = tmp_path / "corpus"
    args = ["--out", str(out), "--locale-dir", str(locale), "--valid", "5", "--test", "5", "--min-train", "10"]
    assert prepare_gettext.main(args) == 0
    lines = {f"{s}.{lang}": (out / f"{s}.{lang}").read_text().splitlines() for s in ("train", "valid", "test")
             for lang in ("de", "en")}  # fmt: skip
    assert [len(lines[f"{s}.en"]) for s in ("train", "valid", "test")] == [31, 5, 5]  # 40 + the context entry
    english = [e for s in ("train", "valid", "test") for e in lines[f"{s}.en"]]
    assert len(set(english)) == len(english) == 41  # deduplicated; header, short and identical pairs dropped
    assert "open the file now" in english and "an unlisted domain here" not in english
    pairs = dict(zip(lines["train.en"] + lines["valid.en"] + lines["test.en"],
                     lines["train.de"] + lines["valid.de"] + lines["test.de"]))  # fmt: skip
    assert pairs["could not open file number 1"] == "Datei Nummer 1 konnte nicht geöffnet werden"  # first domain wins
    meta = json.loads((out / "meta.json").read_text())
    assert sorted(meta["domains"]) == ["coreutils", "git"] and meta["sizes"] == {"test": 5, "valid": 5, "train": 31}
    again = tmp_path / "again"
    assert prepare_gettext.main([*args[:1], str(again), *args[2:]]) == 0
    assert (again / "test.en").read_text() == (out / "test.en").read_text()  # deterministic
    assert prepare_gettext.main([*args[:-1], "1000"]) == 1
    assert "training pairs" in capsys.readouterr().err
