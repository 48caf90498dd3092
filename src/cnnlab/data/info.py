"""What the CLI shows about a dataset: a text summary, a checksum verification, a class-distribution plot.

``cnnlab data info|verify|plot`` call :func:`dataset_info`, :func:`verify_dataset` (with
:func:`format_verification`) and :func:`plot_class_distribution`.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from .._io import atomic_path, image_format
from .core import DATASETS, ImageDataset, candidate_dirs
from .download import file_digest

# Official md5s, where the dataset's authors publish them; keyed by file name.
OFFICIAL_MD5: dict[str, dict[str, str]] = {}


def _official_md5(name: str) -> dict[str, str]:
    if not OFFICIAL_MD5:
        from .cifar import ARCHIVE, ARCHIVE_MD5
        from .mnist import FASHION_MD5, MNIST_MD5
        OFFICIAL_MD5.update({"mnist": MNIST_MD5, "fashion-mnist": FASHION_MD5,
                             "cifar10": {ARCHIVE: ARCHIVE_MD5}, "cifar10-catsdogs": {ARCHIVE: ARCHIVE_MD5},
                             "cifar10-no-catsdogs": {ARCHIVE: ARCHIVE_MD5}})
    return OFFICIAL_MD5.get(name, {})


def _counts(labels: torch.Tensor, n: int) -> list[int]:
    return torch.bincount(labels.cpu(), minlength=n).tolist() if len(labels) else [0] * n


def dataset_info(ds: ImageDataset) -> str:
    """A plain-text summary: size and shape, counts per class and split, the training split's
    per-channel mean/std, source, layout, lossy or not, the files read and their checksums, the
    files skipped."""
    p = ds.provenance
    tr, te = _counts(ds.train_labels, ds.num_classes), _counts(ds.test_labels, ds.num_classes)
    x = ds.train_images
    if x.dim() == 4:
        shape = f"images {'x'.join(map(str, x.shape[1:]))} (C x H x W) {str(x.dtype).replace('torch.', '')}"
    else:
        shape = f"signals {'x'.join(map(str, x.shape[1:]))} (C x L) {str(x.dtype).replace('torch.', '')}"
    lines = [f"{ds.name}: {sum(tr) + sum(te):,} examples, {ds.num_classes} classes, {shape}", ""]
    w = max([len(c) for c in ds.classes] + [5])
    lines.append(f"  {'class':<{w}}  {'train':>8}  {'test':>8}")
    for c, a, b in zip(ds.classes, tr, te):
        lines.append(f"  {c:<{w}}  {a:>8,}  {b:>8,}")
    lines.append(f"  {'total':<{w}}  {sum(tr):>8,}  {sum(te):>8,}")
    lines.append("")
    units = "[0, 1] units" if x.dtype == torch.uint8 else "data units"
    lines.append(f"train mean {' '.join(f'{v:.4f}' for v in ds.mean)}, std "
                 f"{' '.join(f'{v:.4f}' for v in ds.std)} (per channel, {units})")
    lines.append(f"source: {p.get('source', 'unknown')}")
    for key in ("layout", "note", "subset"):
        if p.get(key):
            lines.append(f"{key}: {p[key]}")
    if p.get("lossy"):
        lines.append("lossy re-encoding: YES - the pixels are a lossy re-encoding, not the official "
                     "ones; compare results only with runs on the same copy")
    else:
        lines.append("lossy re-encoding: no (the pixels are the source files' own)")
    if "split" in p:
        s = p["split"]
        lines.append(f"test split: {s.get('test_fraction')} held out, seed {s.get('seed')} "
                     f"({s.get('method', '')}{'; order ' + s['order'] if s.get('order') else ''})")
    if "distinct" in p:  # notMNIST: exact duplicates removed before the split
        d = p["distinct"]
        lines.append(f"duplicates: {d['copies_removed']:,} extra copies removed and "
                     f"{d['ambiguous_dropped']:,} copies of images under two classes dropped "
                     + (f"(of {p['total']:,} read), " if p.get("total") else "") + "before the split")
    if "resize" in p:
        r = p["resize"]
        lines.append(f"resize: {r.get('size')} {r.get('policy')}, {r.get('color')}, {r.get('resample')}")
    files = p.get("files", {})
    if files:
        lines.append(f"files read (sha256){' - ' + p['files_note'] if p.get('files_note') else ''}:")
        for f, h in list(files.items())[:20]:
            n = p.get("file_counts", {}).get(f)
            lines.append(f"  {h}  {f}{f' ({n:,} files)' if n else ''}")
        if len(files) > 20:
            lines.append(f"  ... and {len(files) - 20} more")
    sk = p.get("skipped")
    if sk and sk.get("count"):
        first = "; ".join(f"{n} ({r})" for n, r in sk.get("first", []))
        lines.append(f"skipped: {sk['count']} file(s): {first}{' ...' if sk['count'] > len(sk['first']) else ''}")
    if p.get("cache"):
        lines.append(f"decoded from cache: {'yes' if p.get('from_cache') else 'no (now cached)'}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# verification


def _read_sums(path: Path) -> list[tuple[str, str]]:
    """``(sha256, relative path)`` per line of a ``sha256sum`` file (text or ``*binary`` mode)."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        h, _, name = line.partition(" ")
        name = name[1:] if name[:1] in (" ", "*") else name
        out.append((h.strip().lower(), name))
    return out


def _norm(rel: str) -> str:
    return rel[2:] if rel.startswith("./") else rel


def _sums_for(d: Path, folder: str):
    """The SHA256SUMS entries that cover folder ``d``, as ``(sums file, base folder, [(sha256,
    path relative to base)])`` or None. From ``d/SHA256SUMS`` (only its entries under ``folder/``
    if it has any: a data root's file), else from ``d.parent/SHA256SUMS`` (entries under
    ``d.name/``)."""
    if (d / "SHA256SUMS").is_file():
        entries = [(h, _norm(n)) for h, n in _read_sums(d / "SHA256SUMS")]
        pre = folder.rstrip("/") + "/"
        sub = [(h, n[len(pre):]) for h, n in entries if n.startswith(pre)] if folder != "." else []
        return (d / "SHA256SUMS", d / folder, sub) if sub else (d / "SHA256SUMS", d, entries)
    if (d.parent / "SHA256SUMS").is_file():
        pre = d.name + "/"
        got = [(h, _norm(n)[len(pre):]) for h, n in _read_sums(d.parent / "SHA256SUMS")
               if _norm(n).startswith(pre)]
        if got:
            return d.parent / "SHA256SUMS", d, got
    return None


def verify_dataset(name: str, data_dir: str | os.PathLike | None = None) -> dict:
    """Check a dataset's files against the checksums that exist for them.

    Two kinds of reference are used, each only where it exists: the official md5s the authors
    publish (MNIST, Fashion-MNIST, the CIFAR-10 python archive), and a ``SHA256SUMS`` file in
    ``sha256sum`` format, in the dataset's folder or in its parent (entries under the folder's name,
    as in ``../shared/data/SHA256SUMS``). The first candidate folder (as the loader searches them)
    that has either is verified.

    Returns:
        ``{"dataset", "folder", "ok", "checks", "failed", "missing", "unlisted", "message"}``:
        ``ok`` is True when every check passed, False when any failed or a listed file is missing,
        None when there was nothing to check against. ``checks`` has one
        ``{"file", "algo", "expected", "actual", "ok", "against"}`` per file; ``failed`` and
        ``missing`` list file names; ``unlisted`` counts the files in the folder that no reference
        covers (not an error: e.g. a README).

    Raises:
        UnknownNameError: unknown dataset name.
        ValueError: a dataset that is any folder (``image-folder``) without ``data_dir``.
    """
    entry = DATASETS.get(name)
    if entry.folder == "." and not data_dir:  # it would check whatever data root it found
        raise ValueError(f"dataset {name!r} needs the folder: pass data_dir (--data-dir PATH)")
    dirs = [Path(data_dir)] if entry.folder == "." and data_dir else candidate_dirs(entry.folder, data_dir)
    md5 = _official_md5(name)
    report = {"dataset": name, "folder": None, "ok": None, "checks": [], "failed": [], "missing": [],
              "unlisted": 0, "message": ""}
    for d in dirs:
        if not d.is_dir():
            continue
        official = {f: h for f, h in md5.items() if (d / f).is_file()}
        sums = _sums_for(d, entry.folder)
        if not official and not sums:
            continue
        report["folder"] = str(d)
        checks = report["checks"]
        for f, h in official.items():
            got = file_digest(d / f, "md5")
            checks.append({"file": f, "algo": "md5", "expected": h, "actual": got, "ok": got == h,
                           "against": "official md5"})
        listed = set()
        if sums:
            src, base, entries = sums
            if base != d:
                report["folder"] = str(base)
            for h, rel in entries:
                listed.add(rel)
                p = base / rel
                if not p.is_file():
                    report["missing"].append(rel)
                    continue
                got = file_digest(p, "sha256")
                checks.append({"file": rel, "algo": "sha256", "expected": h, "actual": got,
                               "ok": got == h, "against": str(src)})
            present = {q.relative_to(base).as_posix() for q in base.rglob("*") if q.is_file()}
            report["unlisted"] = len(present - listed - set(official) - {"SHA256SUMS"})
        report["failed"] = [c["file"] for c in checks if not c["ok"]]
        report["ok"] = not report["failed"] and not report["missing"]
        kinds = sorted({c["against"] if c["algo"] == "md5" else "SHA256SUMS" for c in checks})
        report["message"] = (f"{len(checks) - len(report['failed'])}/{len(checks)} checksums match "
                             f"({', '.join(kinds)})"
                             + (f"; {len(report['failed'])} differ" if report["failed"] else "")
                             + (f"; {len(report['missing'])} listed files missing" if report["missing"] else ""))
        return report
    report["message"] = ("nothing to verify against: no official checksum is known for these files "
                         "and no SHA256SUMS file covers them (searched: "
                         + ", ".join(str(d) for d in dirs) + ")")
    return report


def format_verification(report: dict, show: int = 10) -> str:
    """A few lines for the CLI: verdict, folder, counts, and the first failures."""
    verdict = {True: "OK", False: "FAILED", None: "UNVERIFIED"}[report["ok"]]
    lines = [f"{report['dataset']}: {verdict} - {report['message']}"]
    if report["folder"]:
        lines.append(f"  folder: {report['folder']}")
    for c in [c for c in report["checks"] if not c["ok"]][:show]:
        lines.append(f"  DIFFERS {c['file']}: {c['algo']} {c['actual']} != {c['expected']} ({c['against']})")
    for m in report["missing"][:show]:
        lines.append(f"  MISSING {m}")
    if report["unlisted"]:
        lines.append(f"  {report['unlisted']} file(s) in the folder have no reference checksum")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# plot


def plot_class_distribution(ds: ImageDataset, path: str | os.PathLike) -> Path:
    """Write a PNG with, per split (train, test), a bar chart of the examples per class and a pie
    chart of the class shares (as seed 001 §5 does for CIFAR-10). Written atomically.

    Returns:
        The path written.
    """
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    splits = [("train", ds.train_labels), ("test", ds.test_labels)]
    k = ds.num_classes
    fig = Figure(figsize=(12, 9), layout="constrained")
    FigureCanvasAgg(fig)  # Agg, without touching pyplot's global backend
    colors = [matplotlib.colormaps["tab10" if k <= 10 else "tab20"](i % 20) for i in range(k)]
    axes = fig.subplots(len(splits), 2, gridspec_kw={"width_ratios": [3, 2]})
    for row, (split, labels) in zip(axes, splits):
        counts = _counts(labels, k)
        bars = row[0].bar(range(k), counts, color=colors)
        row[0].bar_label(bars, labels=[f"{c:,}" for c in counts], fontsize=8)
        tilt = k > 5 and max(len(c) for c in ds.classes) > 3  # long names would overlap
        row[0].set_xticks(range(k), ds.classes, rotation=45 if tilt else 0,
                          ha="right" if tilt else "center")
        row[0].set_ylabel("examples")
        row[0].set_title(f"{split}: examples per class ({sum(counts):,} in all)")
        row[0].margins(y=0.12)
        if sum(counts):
            row[1].pie(counts, labels=ds.classes, colors=colors, autopct="%1.1f%%", startangle=90,
                       counterclock=False, textprops={"fontsize": 8})
        row[1].set_title(f"{split}: share of each class")
        row[1].axis("equal")
    lossy = " (lossy copy)" if ds.provenance.get("lossy") else ""
    fig.suptitle(f"{ds.name}{lossy}: class distribution")
    fmt = image_format(fig, path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=100)
    return path


__all__ = ["dataset_info", "format_verification", "plot_class_distribution", "verify_dataset"]
