#!/usr/bin/env python
"""Pack a run folder for committing or for the trip back from a GPU machine: its settings,
metrics, results, plots, the newest checkpoint and best.pt -- not the older checkpoints nor
TensorBoard's events, which only make the folder large. The packed folder resumes with
``--resume`` like the original (from its newest checkpoint).

    python scripts/device/pack_run.py runs/omni --to docs/runs/omni     # a folder copy
    python scripts/device/pack_run.py runs/omni --tgz "$OUT/omni.tgz"    # an archive of omni/
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
from pathlib import Path


def kept_files(run_dir: Path) -> list[Path]:
    """The files of ``run_dir`` that travel, relative to it."""
    ckpts = sorted((run_dir / "checkpoints").glob("ckpt_*.pt"))
    newest = [p for p in ckpts if p.stem[len("ckpt_"):].isdigit()][-1:]
    out = []
    for path in sorted(run_dir.rglob("*")):
        rel = path.relative_to(run_dir)
        if not path.is_file() or rel.parts[0] == "tb" or path.name.startswith(".metarl"):
            continue
        if rel.parts[0] == "checkpoints" and path.name.startswith("ckpt_") \
                and path not in newest:
            continue
        out.append(rel)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--to", type=Path, help="copy the kept files into this folder")
    where.add_argument("--tgz", type=Path, help="write them to this archive, under the run's name")
    args = parser.parse_args(argv)
    run_dir: Path = args.run_dir
    if not (run_dir / "config.json").is_file():
        print(f"error: {run_dir} holds no run (no config.json)", file=sys.stderr)
        return 2
    files = kept_files(run_dir)
    if args.tgz is not None:
        with tarfile.open(args.tgz, "w:gz") as tar:
            for rel in files:
                tar.add(run_dir / rel, arcname=str(Path(run_dir.name) / rel))
    else:
        for rel in files:
            (args.to / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(run_dir / rel, args.to / rel)
        stale = sorted(p for p in (args.to / "checkpoints").glob("ckpt_*.pt")
                       if p.relative_to(args.to) not in files)
        for p in stale:  # the destination's older newest checkpoint, now superseded
            p.unlink()
    print(f"{run_dir}: {len(files)} files -> {args.tgz or args.to}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
