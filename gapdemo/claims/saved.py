"""Claims results saved in the runs folder (claims-<id>/claims.json): listed and read back, checked first.

claims.json lies in the shared runs folder, so what is read back is untrusted: a folder that is a link is not
followed, a folder not named like gapdemo's is passed by, and a file past the JSON cap, naming another
folder's id, or missing a claim's section or verdict is refused (claims_file_problem says why in one
sentence) so that the Claims tab draws only results gapdemo wrote.
"""

from __future__ import annotations

from pathlib import Path

from gapdemo import runs
from gapdemo.claims.registry import CLAIMS

CLAIMS_PREFIX, CLAIMS_FILE = "claims-", "claims.json"


def list_claims(runs_dir) -> list[Path]:
    """claims-*/ folders under runs_dir that hold a claims.json, newest first (links and odd names passed by)."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    found = [path for path in runs_dir.glob(f"{CLAIMS_PREFIX}*") if not path.is_symlink() and
             runs.is_run_id(path.name) and (path / CLAIMS_FILE).is_file()]
    return sorted(found, key=lambda path: path.name, reverse=True)


def claims_file_problem(claims_dir: Path) -> str | None:
    """Why claims_dir's claims.json may not be shown, in one sentence; None when it may."""
    claims_dir = Path(claims_dir)
    try:
        result = runs.read_json(claims_dir / CLAIMS_FILE)
    except runs.RunFileError as error:
        return str(error)
    return _result_problem(result, claims_dir.name)


def _result_problem(result: dict, folder_name: str) -> str | None:
    where = f"The file {CLAIMS_FILE} in {folder_name}"
    if not result:
        return f"{where} holds no result; it was passed by."
    if result.get("id") != folder_name:
        return f"{where} names another claims result; it was refused."
    verdicts = result.get("verdicts")
    if not isinstance(verdicts, dict) or not all(isinstance(result.get(key), dict) and isinstance(verdicts.get(key), str)
                                                 for key in CLAIMS):
        return f"{where} does not hold the four claims as gapdemo writes them; it was refused."
    return None


def latest_claims(runs_dir) -> dict | None:
    """The newest saved claims result under runs_dir that claims_file_problem lets through, or None."""
    for path in list_claims(runs_dir):
        try:
            result = runs.read_json(path / CLAIMS_FILE)
        except runs.RunFileError:
            continue
        if _result_problem(result, path.name) is None:
            return result
    return None
