"""``inftythink leaderboard publish``: upload the store and the rendered pages to a hub dataset.

Owns: the upload plan (every stored record under ``results/``, plus
``LEADERBOARD.md`` and ``index.html`` when rendered: repo path, local path,
size, sha256), the ``--dry-run`` listing of exactly that plan, and the one
``huggingface_hub`` commit that uploads it, with a clear error when the hub
cannot be reached or refuses.

Does not know: how records or pages are made.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path


class PublishError(RuntimeError):
    """The upload did not happen; the message says why and what to do."""


@dataclass(frozen=True)
class Upload:
    repo_path: str   # path inside the dataset repository
    local: Path      # file on this machine
    size: int        # bytes
    sha256: str


def plan(results_dir: Path, pages_dir: Path) -> list[Upload]:
    """What ``publish`` uploads: records first, then the rendered pages."""
    files = [(f"results/{p.name}", p) for p in sorted(Path(results_dir).glob("*.json"))]
    files += [(name, Path(pages_dir) / name) for name in ("LEADERBOARD.md", "index.html") if (Path(pages_dir) / name).is_file()]
    if not files:
        raise PublishError(f"nothing to publish: no records in {results_dir} and no pages in {pages_dir}; "
                           "run `inftythink leaderboard import OUT` and `inftythink leaderboard render` first")
    return [Upload(repo, local, local.stat().st_size, hashlib.sha256(local.read_bytes()).hexdigest()) for repo, local in files]


def describe(uploads: list[Upload], repo: str, verb: str = "would upload") -> str:
    total = sum(u.size for u in uploads)
    lines = [f"{verb} {len(uploads)} file(s), {total:,} bytes, to hub dataset {repo} (one commit):"]
    lines += [f"  {u.repo_path:<70} {u.size:>10,} B  sha256:{u.sha256[:16]}  <- {u.local}" for u in uploads]
    return "\n".join(lines)


def upload(uploads: list[Upload], repo: str, message: str) -> str:
    """One commit with every file; returns the commit URL.  Raises ``PublishError`` on any failure."""
    try:
        from huggingface_hub import CommitOperationAdd, HfApi
    except ImportError as exc:
        raise PublishError("huggingface_hub is not installed: pip install huggingface_hub") from exc
    api = HfApi()
    operations = [CommitOperationAdd(path_in_repo=u.repo_path, path_or_fileobj=str(u.local)) for u in uploads]
    try:
        api.create_repo(repo, repo_type="dataset", exist_ok=True)
        info = api.create_commit(repo, operations=operations, commit_message=message, repo_type="dataset")
    except Exception as exc:  # the hub client raises many kinds: connection, HTTP, auth, offline mode
        endpoint = getattr(api, "endpoint", "the Hugging Face Hub")
        raise PublishError(
            f"could not publish to hub dataset {repo} at {endpoint}: {type(exc).__name__}: {str(exc)[:300]}. "
            "Nothing was uploaded. Check the network and HF_TOKEN (`huggingface-cli login`), or HF_ENDPOINT; "
            "use --dry-run to see what would be uploaded.") from exc
    return str(getattr(info, "commit_url", info))


def add_arguments(parser) -> None:
    parser.add_argument("--repo", required=True, help="hub dataset id, e.g. my-org/inftythink-leaderboard")
    parser.add_argument("--dry-run", action="store_true", help="list exactly what would be uploaded, upload nothing")
    parser.add_argument("--message", default="Update inftythink-eval leaderboard", help="commit message")


def run(args) -> int:
    try:
        uploads = plan(args.store, args.out)
        print(describe(uploads, args.repo, "would upload" if args.dry_run else "uploading"), flush=True)
        if args.dry_run:
            print("dry run: nothing uploaded")
            return 0
        print("uploaded:", upload(uploads, args.repo, args.message))
        return 0
    except PublishError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
