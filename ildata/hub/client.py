"""Talking to the Hub: dataset references, the reachability probe, and one-line errors.

Every other hub module goes through `hub_errors` and `probe`, so that any failure of
`huggingface_hub` reaches the user as a DataError naming the repository.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ildata.episode import DataError
from ildata.store import EPISODES_FILE, FORMAT_NAME, FORMAT_VERSION, INFO_FILE, STATS_FILE

REPO_TYPE = "dataset"
FORMAT_TAG = f"{FORMAT_NAME}-format-v{FORMAT_VERSION}"
# One quick request decides whether the Hub is reachable, so that an offline machine gets an
# answer in seconds instead of huggingface_hub's retries with backoff (~23 s).
PROBE_TIMEOUT_S = 5.0


def cache_dir() -> Path:
    """Where converted Hub datasets and verification markers live ($ILDATA_CACHE)."""
    return Path(os.environ.get("ILDATA_CACHE") or Path.home() / ".cache" / "ildata") / "hub"


class HubUnreachable(DataError):
    """The Hub could not be contacted (offline mode, no route, refused, timed out)."""


def parse_ref(text: str) -> tuple[str, str | None]:
    """`hf://owner/name@rev`, `owner/name@rev` or `owner/name` -> (repo_id, revision or None)."""
    ref = text[len("hf://") :] if text.startswith("hf://") else text
    if ref.startswith("datasets/"):
        ref = ref[len("datasets/") :]
    repo_id, _, revision = ref.partition("@")
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise DataError(f"{text!r} is not a Hub dataset reference (expected owner/name or owner/name@revision)")
    return repo_id, revision or None


def store_files(info: dict[str, Any]) -> list[str]:
    """The files that make up a store, relative to its root (data shards first, metadata last)."""
    return [*info["data_files"], EPISODES_FILE, STATS_FILE, INFO_FILE]


def endpoint() -> str:
    """The Hub URL huggingface_hub talks to (HF_ENDPOINT), for messages."""
    from huggingface_hub import constants

    return constants.ENDPOINT


def missing_repo_message(repo_id: str) -> str:
    return f"no dataset repository {repo_id} on {endpoint()} (a private one needs HF_TOKEN or `hf auth login`)"


def _network_errors() -> tuple[type[BaseException], ...]:
    """Exceptions meaning "the Hub could not be reached" for the installed huggingface_hub."""
    from huggingface_hub.errors import OfflineModeIsEnabled

    try:  # huggingface_hub >= 1.0 speaks HTTP through httpx (vendored as httpx2 in 2.x)
        import httpx2 as http
    except ImportError:  # pragma: no cover - older huggingface_hub
        try:
            import httpx as http  # type: ignore[no-redef]
        except ImportError:
            import requests

            return (requests.ConnectionError, requests.Timeout, OfflineModeIsEnabled)
    return (http.ConnectError, http.TimeoutException, http.NetworkError, OfflineModeIsEnabled)


@contextlib.contextmanager
def hub_errors(repo_id: str, revision: str | None) -> Iterator[None]:
    """Turn huggingface_hub's exceptions into one-line DataErrors."""
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        yield
    except RevisionNotFoundError:
        raise DataError(f"{repo_id} has no revision {revision!r} on {endpoint()}") from None
    except RepositoryNotFoundError:
        raise DataError(missing_repo_message(repo_id)) from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "?"
        detail = (exc.server_message or str(exc)).strip().splitlines()[0] if (exc.server_message or str(exc)).strip() else ""
        hint = " (check HF_TOKEN or `hf auth login`)" if status in (401, 403) else ""
        raise DataError(f"the Hub answered {status} for {repo_id}: {detail}{hint}") from None
    except _network_errors() as exc:
        raise HubUnreachable(_unreachable_message(exc)) from None


def _unreachable_message(exc: BaseException) -> str:
    from huggingface_hub.errors import OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return "offline mode is on (HF_HUB_OFFLINE=1): cannot contact the Hub"
    return f"cannot reach the Hub at {endpoint()} ({type(exc).__name__}: {str(exc) or 'no answer'})"


def probe(api: Any, repo_id: str, revision: str | None) -> Any | None:
    """repo_info with a short timeout: the revision's info, or None if the repository does not exist.

    Raises HubUnreachable at once when the Hub cannot be reached.
    """
    from huggingface_hub import constants
    from huggingface_hub.errors import RepositoryNotFoundError

    if constants.is_offline_mode():
        raise HubUnreachable("offline mode is on (HF_HUB_OFFLINE=1): cannot contact the Hub")
    with hub_errors(repo_id, revision):
        try:
            return api.repo_info(repo_id, repo_type=REPO_TYPE, revision=revision, timeout=PROBE_TIMEOUT_S)
        except RepositoryNotFoundError:
            return None
