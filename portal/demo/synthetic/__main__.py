"""Command line: ``python -m portal.demo.synthetic --studies 50 --seed 1 --pairs out.jsonl``."""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from . import generate_department, labelled_pairs, write_dicom


def main(argv: Sequence[str] | None = None) -> int:
    """Generate a department; write labelled pairs (JSON Lines) and optionally DICOM files."""
    parser = argparse.ArgumentParser(prog="python -m portal.demo.synthetic", description=__doc__)
    parser.add_argument("--studies", type=int, default=50, help="number of studies (default 50)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--pairs", type=Path, help="write labelled pairs here as JSON Lines")
    parser.add_argument("--dicom-dir", type=Path, help="write one DICOM file per study into this folder")
    args = parser.parse_args(argv)
    try:
        department = generate_department(studies=args.studies, seed=args.seed)
    except ValueError as exc:
        parser.error(str(exc))
    if args.pairs:
        with args.pairs.open("w", encoding="utf-8", newline="\n") as out:
            for pair in labelled_pairs(department):
                out.write(json.dumps(pair, ensure_ascii=False) + "\n")
    if args.dicom_dir:
        args.dicom_dir.mkdir(parents=True, exist_ok=True)
        for study in department.iter_studies():
            write_dicom(study, study.patient, args.dicom_dir / f"{study.accession_number}.dcm")
    categories = Counter(p.category for s in department.studies for p in s.perturbations)
    perturbed = sum(1 for s in department.studies if s.perturbations)
    print(
        f"{len(department.studies)} studies, {len(department.patients)} patients, "
        f"{len(department.radiologists)} radiologists; {perturbed} perturbed: "
        + ", ".join(f"{name}={categories[name]}" for name in sorted(categories)),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
