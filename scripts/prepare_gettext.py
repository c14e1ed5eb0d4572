"""Build an offline German–English sentence corpus from the gettext message catalogs of installed Debian packages.

The CPU stand-in for IWSLT'14 De-En when the Ding dictionary's sentences are too unrelated to be learnt in minutes
(README "Translation"): every Debian package that ships German translations installs
``/usr/share/locale/de/LC_MESSAGES/<domain>.mo``, a catalog of English messages (``msgid``) and their German
translations (``msgstr``) — sentence-level parallel text made by the packages' translators. Each catalog carries its
package's licence (mostly GPL-2+/LGPL): the corpus is built at set-up time into a git-ignored folder and never
committed.

    python scripts/prepare_gettext.py --out data/gettext_de_en            # German source, English target

Rules (version ``RULES_VERSION``): read the domains of ``DOMAINS`` that are installed (the list is fixed so that other
installed packages do not change the corpus; ``meta.json`` records which were found and their sha256); skip plural
entries and the header; drop a message context (``ctx\\x04msgid``); collapse whitespace; keep pairs whose English side
has 3–40 words and whose sides differ; deduplicate on the English side (first in domain order). Split: pairs sorted by
the sha256 of the English side, the first ``--test`` are test, the next ``--valid`` valid, the rest train (no English
sentence is in two splits). Imports no torch; runs in seconds.
"""

from __future__ import annotations

import argparse
import gettext
import hashlib
import json
import sys
from pathlib import Path

RULES_VERSION = 1
LOCALE_DIR = "/usr/share/locale"
DOMAINS = (  # gettext domains of common Debian packages; the order decides which duplicate is kept
    "coreutils", "git", "dpkg", "dpkg-dev", "apt", "libapt-pkg6.0", "libc", "tar", "grep", "findutils", "diffutils",
    "bash", "gnupg2", "glib20", "gtk30", "gtk30-properties", "gtk20", "gtk20-properties", "wget", "procps-ng",
    "shadow", "gettext-tools", "gettext-runtime", "postgres-15", "psql-15", "pg_dump-15", "initdb-15", "mit-krb5",
    "appstream", "gsettings-desktop-schemas", "gstreamer-1.0", "opcodes", "ld", "gprof", "elfutils", "Linux-PAM",
    "adduser", "avahi", "PackageKit", "gdk-pixbuf", "gnutls30", "libidn2", "libpq5-15",
)  # fmt: skip


def read_catalog(path: Path) -> list[tuple[str, str]]:
    """(English, German) pairs of one .mo file, whitespace collapsed; plural entries and the header skipped."""
    try:
        with open(path, "rb") as f:
            catalog = gettext.GNUTranslations(f)._catalog
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        print(f"[gettext] skipping {path}: {exc}", file=sys.stderr)
        return []
    pairs = []
    for key, value in catalog.items():
        if not isinstance(key, str) or not key or not value:
            continue
        english = " ".join(key.rpartition("\x04")[2].split())
        german = " ".join(value.split())
        if 3 <= len(english.split()) <= 40 and german and german != english:
            pairs.append((english, german))
    return sorted(pairs)


def build(locale_dir: Path, lang: str, n_valid: int, n_test: int) -> tuple[dict, dict]:
    seen, pairs, found = set(), [], {}
    for domain in DOMAINS:
        path = locale_dir / lang / "LC_MESSAGES" / f"{domain}.mo"
        if not path.is_file():
            continue
        found[domain] = hashlib.sha256(path.read_bytes()).hexdigest()
        for english, german in read_catalog(path):
            if english not in seen:
                seen.add(english)
                pairs.append((german, english))
    pairs.sort(key=lambda p: hashlib.sha256(p[1].encode()).hexdigest())
    splits = {"test": pairs[:n_test], "valid": pairs[n_test : n_test + n_valid], "train": pairs[n_test + n_valid :]}
    return splits, found


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True, type=Path, help="output corpus folder")
    ap.add_argument("--lang", default="de", help="translation language of the catalogs (the source side)")
    ap.add_argument("--locale-dir", type=Path, default=Path(LOCALE_DIR))
    ap.add_argument("--valid", type=int, default=1000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--min-train", type=int, default=5000, help="fail if fewer training pairs are found")
    args = ap.parse_args(argv)
    splits, found = build(args.locale_dir, args.lang, args.valid, args.test)
    if len(splits["train"]) < args.min_train:
        print(
            f"error: only {len(splits['train'])} training pairs in {args.locale_dir}/{args.lang}/LC_MESSAGES "
            f"(need {args.min_train}). Install packages that ship translations, e.g. "
            "sudo apt-get install coreutils git dpkg-dev gnupg libgtk-3-0 postgresql, and keep /usr/share/locale.",
            file=sys.stderr,
        )
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for split, pairs in splits.items():
        for side, lang in ((0, args.lang), (1, "en")):
            (args.out / f"{split}.{lang}").write_text("".join(p[side] + "\n" for p in pairs), encoding="utf-8")
    meta = {
        "corpus": "gettext", "rules_version": RULES_VERSION, "src": args.lang, "tgt": "en",
        "locale_dir": str(args.locale_dir), "domains": found, "sizes": {k: len(v) for k, v in splits.items()},
    }  # fmt: skip
    (args.out / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v}" for k, v in meta["sizes"].items()), f"({len(found)} domains)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
