"""Rebuild reports.jsonl from the public sources (run by hand; see SOURCES.md).

Usage: python tests/data/compare/real/extract_sources.py IU_CSV|- MTSAMPLES_SCRAPE_GIT_DIR

With ``-`` instead of the IU CSV the Indiana reports already in reports.jsonl are kept line for line
and only the MTSamples part is rebuilt.

``MTSAMPLES_SCRAPE_GIT_DIR`` is a clone (or bare git directory) of terrah27/spider_mtsamples.com, the
Scrapy project that collected the MTSamples pages for the Kaggle "Medical Transcriptions" data set;
its ``.scrapy/httpcache`` holds every sample page as fetched. Texts are copied verbatim: the page's
line breaks become newlines and its bold section names stay where they were; nothing is rewritten, so
the NoDerivatives terms of the Indiana collection are kept. Controlled edits are made at evaluation
time, never stored.
"""

from __future__ import annotations

import ast
import csv
import gzip
import html
import json
import re
import subprocess
import sys
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
from inference.compare import devset  # noqa: E402  (path set up above so the script runs from a checkout)

OUT = Path(__file__).with_name("reports.jsonl")
#: Normal IU reports kept for normal-vs-normal pairs (the first ones by uid).
NORMALS_KEPT = 450
IU_FIELDS = ("indication", "comparison", "findings", "impression")
_PAGE_RE = re.compile(
    r"Sample Type / Medical Specialty: </b>.*?<b>Sample Name:</b>\s*(?P<name>.*?)</H1>.*?"
    r"\(Medical Transcription Sample Report\)<br>\s*<hr>(?P<body>.*?)<!-- Ezoic - MTSam Sample Bottom",
    re.S | re.I,
)
#: A sample is an imaging report when its name or opening names a modality or view ...
_MODALITY_RE = re.compile(
    r"\b(?:CT|CTA|HCT|MRI|MRA|ultrasound|sonogra\w*|doppler|duplex|x-?rays?|views?|radiograph\w*|"
    r"mammogra\w*|PET|bone scan|series|KUB|urogram|barium|nuclear medicine|fluoroscop\w*|images? of|"
    r"airway|biophysical profile|anatomical survey|arterial imaging)\b",
    re.I,
)
#: ... and it is not a cardiology test, a therapy, a procedure note or a clinic note that cites imaging.
_NOT_A_REPORT_RE = re.compile(
    r"echocardio|stress|EMG|EEG|nerve conduction|radiation|brachytherapy|simulation|biopsy|catheter|"
    r"placement|injection|ablation|thermocoag|cholecystectomy|paracentesis|chemoradio|hyperfraction|"
    r"laparoscop|infusion|bunionectomy|electronystag|discogram|particulate|closure|angioplasty|cath\b|"
    r"speech|swallow study evaluation|myoview|mayoview|perfusion|coronary angiography|colonoscopy|"
    r"progress note|ER visit|grade i:",
    re.I,
)
_CLINIC_NOTE_RE = re.compile(r"^\s*(?:CC|HX)\s*:|PREOPERATIVE DIAGNOSIS|HISTORY OF PRESENT ILLNESS|HPI:")
_READING_RE = re.compile(r"\b(?:FINDINGS?|IMPRESSION|CONCLUSIONS?|INTERPRETATION|OPINION)\s*:", re.I)
_STUDY_RES = (
    ("MG", re.compile(r"mammogra", re.I)),
    ("US", re.compile(r"ultrasound|sonogra|doppler|duplex|biophysical|anatomical survey|arterial", re.I)),
    ("NM", re.compile(r"nuclear|PET\b|bone scan|radionuclide", re.I)),
    ("MR", re.compile(r"\bMRI?\b|\bMRA\b", re.I)),
    ("CT", re.compile(r"\bH?CTA?\b", re.I)),
    ("XR", re.compile(r".", re.S)),
)  # fmt: skip


def _iu_rows(path: Path) -> list[dict[str, object]]:
    rows = []
    with path.open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            if not row["findings"].strip() or not row["impression"].strip():
                continue
            rows.append(
                {
                    "id": f"iu{int(row['uid']):04d}",
                    "source": "iu-openi",
                    "study": "XR chest",
                    "problems": row["Problems"],
                    "sections": {name: row[name].strip() for name in IU_FIELDS},
                }
            )
    return rows


def page_text(body: str) -> str:
    """The sample's text as a reader sees the page: line breaks kept, markup and blank lines dropped."""
    text = html.unescape(re.sub(r"<[^>]+>", "", re.sub(r"<br\s*/?>", "\n", body, flags=re.I)))
    lines = [line.strip() for line in text.splitlines()]
    return "\n".join(line for line in lines if line)


def is_imaging_report(name: str, text: str) -> bool:
    """True for a diagnostic imaging report (CT, MR, ultrasound, radiograph, mammogram, nuclear)."""
    if _NOT_A_REPORT_RE.search(name) or _NOT_A_REPORT_RE.search(text[:300]) or _CLINIC_NOTE_RE.search(text):
        return False
    names_modality = _MODALITY_RE.search(name) or _MODALITY_RE.search(text[:200])
    return bool(names_modality and _READING_RE.search(text))


def study_type(name: str, text: str) -> str:
    """A coarse modality code from the sample's name (its first line when the name says none)."""
    for code, pattern in _STUDY_RES:
        if pattern.search(name) or (code != "XR" and pattern.search(text.split("\n", 1)[0])):
            return code
    return "XR"


def _cached_pages(git_dir: Path) -> list[tuple[str, bytes]]:
    """(url, response body) of every page in the scraper's Scrapy HTTP cache, read from git."""
    listing = subprocess.run(
        ["git", "--git-dir", str(git_dir), "ls-tree", "-r", "HEAD", ".scrapy/httpcache"],
        capture_output=True, check=True, text=True,
    ).stdout  # fmt: skip
    blobs: dict[str, dict[str, str]] = {}
    for line in listing.splitlines():
        meta, path = line.split("\t")
        folder, _, leaf = path.rpartition("/")
        blobs.setdefault(folder, {})[leaf] = meta.split()[2]
    both = {"meta", "response_body"}
    wanted = [(e["meta"], e["response_body"]) for e in blobs.values() if both <= e.keys()]
    contents = _cat_blobs(git_dir, [blob for pair in wanted for blob in pair])
    pages = []
    for meta, body in wanted:
        url = ast.literal_eval(contents[meta].decode())["url"]
        raw = contents[body]
        pages.append((url, gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw))
    return pages


def _cat_blobs(git_dir: Path, blobs: list[str]) -> dict[str, bytes]:
    out = subprocess.run(
        ["git", "--git-dir", str(git_dir), "cat-file", "--batch"],
        input="\n".join(blobs).encode() + b"\n", capture_output=True, check=True,
    ).stdout  # fmt: skip
    contents, cursor = {}, 0
    while cursor < len(out):
        header_end = out.index(b"\n", cursor)
        sha, _, size = out[cursor:header_end].split()
        contents[sha.decode()] = out[header_end + 1 : header_end + 1 + int(size)]
        cursor = header_end + 1 + int(size) + 1
    return contents


def _decoded(raw: bytes) -> str:
    # The site (IIS, no charset in its headers) serves Windows-1252: "Kager\x92s fat" is an apostrophe.
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1252", "replace")


def _mtsamples_rows(git_dir: Path) -> list[dict[str, object]]:
    samples: dict[int, dict[str, object]] = {}
    for url, raw in _cached_pages(git_dir):
        query = {k.lower(): v[0] for k, v in urllib.parse.parse_qs(urllib.parse.urlparse(url).query).items()}
        match = _PAGE_RE.search(_decoded(raw)) if "sample" in query else None
        if match is None:
            continue
        number = int(query["sample"].split("-")[0])
        name = html.unescape(match.group("name")).strip()
        text = page_text(match.group("body"))
        # One sample is listed under several specialties; the first page seen is kept.
        if number not in samples and is_imaging_report(name, text):
            samples[number] = {
                "id": f"mt{number:04d}", "source": "mtsamples", "study": study_type(name, text),
                "problems": "", "sample": name, "text": text,
            }  # fmt: skip
    return [samples[number] for number in sorted(samples)]


def _selected(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Keep what the development set uses: reports that support a controlled edit, the first normal
    reports, and every MTSamples report. The rest of the collection adds size, not coverage."""
    kept, normals = [], 0
    for row in rows:
        report = devset.with_text(dict(row))
        if row["source"] != "iu-openi" or any(True for _ in devset.edit_pairs(report)):
            kept.append(row)
        elif row["problems"] == "normal" and normals < NORMALS_KEPT:
            normals += 1
            kept.append(row)
    return kept


def _stored_iu_rows() -> list[dict[str, object]]:
    with OUT.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle if line.strip()]
    return [row for row in rows if row["source"] == "iu-openi"]


def main(argv: list[str]) -> int:
    """Write reports.jsonl from the IU CSV (or the IU reports stored) and the MTSamples scrape."""
    iu = _stored_iu_rows() if argv[0] == "-" else _selected(_iu_rows(Path(argv[0])))
    rows = iu + _mtsamples_rows(Path(argv[1]))
    with OUT.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{len(rows)} reports -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
