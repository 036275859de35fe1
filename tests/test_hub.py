"""Hub push/pull through the real huggingface_hub (and datasets) client code, over HTTP, against
the Hub-compatible server in tests/hubserver/ on 127.0.0.1. Nothing here reaches the internet:
a socket guard refuses any connection that is not to the loopback address."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from hubserver import HubServer
from support import LEGACY, make_episodes

import ildata
from ildata.episode import DataError, Episode
from ildata.store import sha256_file

TOKEN = "hf_test_token"


def _point_clients_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, home: Path) -> None:
    """huggingface_hub and datasets read their settings at import time (possibly before this
    module), so besides the environment the module-level constants are patched too."""
    from huggingface_hub import constants

    env = {
        "HF_ENDPOINT": endpoint,
        "HF_TOKEN": TOKEN,
        "HF_HOME": str(home / "hf"),
        "HF_HUB_CACHE": str(home / "hf" / "hub"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_UPDATE_DOWNLOAD_COUNTS": "0",
        "HF_HUB_OFFLINE": "0",
        "ILDATA_CACHE": str(home / "ildata"),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", endpoint + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", env["HF_HUB_CACHE"])
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", True)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    if "datasets.config" in sys.modules:
        _patch_datasets(monkeypatch, endpoint)


def _patch_datasets(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    import datasets.config as config

    monkeypatch.setattr(config, "HF_ENDPOINT", endpoint)
    monkeypatch.setattr(config, "HUB_DATASETS_URL", endpoint + "/datasets/{repo_id}/resolve/{revision}/{path}")
    monkeypatch.setattr(config, "HF_UPDATE_DOWNLOAD_COUNTS", False)
    monkeypatch.setattr(config, "HF_HUB_OFFLINE", False)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch):
    """Fail any test that tries to open a connection outside 127.0.0.1."""
    original = socket.socket.connect

    def guarded(self: socket.socket, address):  # type: ignore[no-untyped-def]
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in ("127.0.0.1", "::1", "localhost"):
            raise AssertionError(f"test tried to reach {address}")
        return original(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    server = HubServer(tokens={TOKEN: "tester"}).start()
    _point_clients_at(monkeypatch, server.endpoint, tmp_path / "home")
    yield server
    server.stop()
    assert server.unhandled == [], f"the client called endpoints the test server lacks: {server.unhandled}"


def _episodes(seed: int, n: int = 4) -> list[Episode]:
    lengths = np.random.default_rng(seed).integers(5, 12, size=n).tolist()
    return make_episodes(lengths, seed=seed, obs_dim=4, act_dim=None, n_actions=2)


@pytest.fixture
def store(tmp_path: Path) -> ildata.TrajectoryDataset:
    return ildata.save(_episodes(0), tmp_path / "ds", env_id="CartPole-v1")


def _same_data(a: ildata.TrajectoryDataset, b: ildata.TrajectoryDataset) -> None:
    ta, tb = a.transitions(), b.transitions()
    np.testing.assert_array_equal(ta.obs, tb.obs)
    np.testing.assert_array_equal(ta.next_obs, tb.next_obs)
    np.testing.assert_array_equal(ta.acts, tb.acts)
    np.testing.assert_array_equal(ta.dones, tb.dones)
    assert a.fingerprint == b.fingerprint


def test_push_creates_repo_card_and_format_tag_and_loads_back(hub: HubServer, store: ildata.TrajectoryDataset) -> None:
    from huggingface_hub import HfApi

    from ildata.hub import FORMAT_TAG, push

    result = push(store.path, "tester/cartpole", license="mit", tags=["expert"])
    api = HfApi()
    files = {f.path: f for f in api.list_repo_tree("tester/cartpole", repo_type="dataset", recursive=True) if hasattr(f, "blob_id")}
    assert set(files) == {
        ".gitattributes",
        "README.md",
        "data/shard-00000.arrow",
        "meta/episodes.parquet",
        "meta/stats.json",
        "meta/info.json",
    }
    assert files["data/shard-00000.arrow"].lfs is not None  # went through the LFS batch API
    assert files["data/shard-00000.arrow"].lfs.sha256 == sha256_file(store.path / "data/shard-00000.arrow")
    refs = api.list_repo_refs("tester/cartpole", repo_type="dataset")
    assert {t.name: t.target_commit for t in refs.tags} == {FORMAT_TAG: result.commit}
    assert [b.target_commit for b in refs.branches if b.name == "main"] == [result.commit]

    card = api.hf_hub_download("tester/cartpole", "README.md", repo_type="dataset")
    text = Path(card).read_text()
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["license"] == "mit"
    assert {"ildata", "expert", FORMAT_TAG, "env:CartPole-v1"} <= set(meta["tags"])
    assert meta["configs"] == [{"config_name": "default", "data_files": [{"split": "train", "path": "data/*.arrow"}]}]
    assert meta["ildata"]["fingerprint"] == store.fingerprint
    assert "| episodes | 4 |" in text and f"| transitions | {store.num_transitions} |" in text
    assert "`CartPole-v1`" in text

    pulled = ildata.load("hf://tester/cartpole")
    _same_data(pulled, store)
    assert pulled.env_id == "CartPole-v1" and pulled.observation_space == store.observation_space
    assert ildata.load(f"hf://tester/cartpole@{FORMAT_TAG}").fingerprint == store.fingerprint


def test_datasets_load_dataset_reads_a_pushed_repository(
    hub: HubServer, store: ildata.TrajectoryDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datasets

    _patch_datasets(monkeypatch, hub.endpoint)
    from ildata.hub import push

    push(store.path, "tester/cartpole")
    table = datasets.load_dataset("tester/cartpole", split="train", cache_dir=str(tmp_path / "dscache"))
    assert table.num_rows == store.num_transitions
    tr = store.transitions()
    np.testing.assert_array_equal(np.array(table["acts"]), tr.acts)
    np.testing.assert_allclose(np.array(table["obs"], dtype=np.float32), tr.obs)
    np.testing.assert_array_equal(np.array(table["episode_index"]), tr.episode_index)


def test_revisions_are_pinned_and_branches_are_separate(hub: HubServer, tmp_path: Path) -> None:
    from ildata.hub import push

    first = ildata.save(_episodes(1), tmp_path / "a")
    second = ildata.save(_episodes(2, n=6), tmp_path / "b")
    c1 = push(first.path, "tester/demo").commit
    c2 = push(second.path, "tester/demo", message="more data").commit
    assert c1 != c2
    _same_data(ildata.load(f"hf://tester/demo@{c1}"), first)
    _same_data(ildata.load("hf://tester/demo"), second)
    _same_data(ildata.load("hf://tester/demo@main"), second)

    dev = push(first.path, "tester/demo", revision="dev")
    assert dev.revision == "dev"
    _same_data(ildata.load("hf://tester/demo@dev"), first)
    _same_data(ildata.load("hf://tester/demo"), second)  # main untouched
    with pytest.raises(DataError, match="no revision 'nope'"):
        ildata.load("hf://tester/demo@nope")
    with pytest.raises(DataError, match="no dataset repository tester/missing"):
        ildata.load("hf://tester/missing")


def test_interrupted_push_is_finished_by_a_rerun(hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ildata.store.layout
    from ildata import hub as hubmod

    monkeypatch.setattr(ildata.store.layout, "SHARD_BYTES", 600)  # several shards of whole episodes
    monkeypatch.setattr(hubmod, "COMMIT_MAX_FILES", 1)  # one shard per commit
    ds = ildata.save(_episodes(3, n=8), tmp_path / "big")
    shards = ds.info["data_files"]
    assert len(shards) >= 3

    hub.fail_commits = {2}  # the second data commit fails
    with pytest.raises(DataError, match="answered 500"):
        hubmod.push(ds.path, "tester/big")
    # Half-pushed repository: no metadata yet, so it cannot be mistaken for a dataset.
    with pytest.raises(DataError, match="neither an ildata dataset"):
        ildata.load("hf://tester/big")

    puts_before = [p for m, p in hub.log if m == "PUT"]
    result = hubmod.push(ds.path, "tester/big")
    assert shards[0] in result.skipped and shards[0] not in result.uploaded
    assert set(shards[1:]) <= set(result.uploaded)
    # The blob of the failed commit was already stored: the LFS batch API let the client skip it.
    new_puts = [p for m, p in hub.log if m == "PUT"][len(puts_before) :]
    failed_sha = sha256_file(ds.path / shards[1])
    assert not any(failed_sha in p for p in new_puts)
    _same_data(ildata.load("hf://tester/big"), ds)

    again = hubmod.push(ds.path, "tester/big")
    assert again.uploaded == [] and again.commits == 0 and again.commit == result.commit


def test_push_removes_stale_shards_and_large_files_go_multipart(hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import HfApi

    import ildata.store.layout
    from ildata.hub import push

    hub.multipart_chunk = 1024  # shards above 1 KiB are sent in parts, then completed
    monkeypatch.setattr(ildata.store.layout, "SHARD_BYTES", 600)
    sharded = ildata.save(_episodes(4, n=8), tmp_path / "sharded")
    push(sharded.path, "tester/shrink")
    assert any("/lfs/part/" in p for _, p in hub.log) and any("/lfs/complete/" in p for _, p in hub.log)
    monkeypatch.setattr(ildata.store.layout, "SHARD_BYTES", 4 << 30)
    single = ildata.save(_episodes(5, n=3), tmp_path / "single")
    result = push(single.path, "tester/shrink")
    assert len(result.deleted) == len(sharded.info["data_files"]) - 1
    names = [f.path for f in HfApi().list_repo_tree("tester/shrink", "data", repo_type="dataset")]
    assert names == ["data/shard-00000.arrow"]
    _same_data(ildata.load("hf://tester/shrink"), single)


def test_inconsistent_remote_fails_fingerprint_check(hub: HubServer, store: ildata.TrajectoryDataset, tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    from ildata.hub import push

    push(store.path, "tester/broken")
    other = ildata.save(_episodes(9), tmp_path / "other")
    HfApi().upload_file(
        path_or_fileobj=str(other.path / "data/shard-00000.arrow"),
        path_in_repo="data/shard-00000.arrow",
        repo_id="tester/broken",
        repo_type="dataset",
    )
    with pytest.raises(DataError, match=r"do not match the fingerprint.*data/shard-00000.arrow"):
        ildata.load("hf://tester/broken")


def test_cli_push_and_pull(hub: HubServer, store: ildata.TrajectoryDataset, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ildata.cli import main

    assert main(["push", str(store.path), "tester/cli", "--message", "first upload", "--license", "cc-by-4.0"]) == 0
    out = capsys.readouterr().out
    assert "pushed" in out and "tester/cli@main" in out

    dst = tmp_path / "pulled"
    assert main(["pull", "tester/cli@ildata-format-v1", str(dst)]) == 0
    assert "4 episodes" in capsys.readouterr().out
    assert not any(p.is_symlink() for p in dst.rglob("*"))  # a standalone copy, not cache links
    assert not list(tmp_path.glob(".pulled.tmp-*"))
    _same_data(ildata.load(dst), store)

    assert main(["pull", "tester/cli", str(dst)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["pull", "tester/nothing", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ildata: error: tester/nothing: no dataset repository")


def test_unreachable_hub_fails_fast_with_one_line(
    hub: HubServer, store: ildata.TrajectoryDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from huggingface_hub import constants

    from ildata.cli import main
    from ildata.hub import push

    assert main(["push", str(store.path), "tester/net"]) == 0
    cached = ildata.load("hf://tester/net")
    capsys.readouterr()

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    monkeypatch.setattr(constants, "ENDPOINT", closed)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", closed + "/{repo_id}/resolve/{revision}/{filename}")
    assert main(["push", str(store.path), "tester/net"]) == 2
    assert main(["pull", "tester/uncached", str(tmp_path / "u")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all("cannot reach the Hub" in line for line in err)
    assert "not in the local cache" in err[1]

    # A revision already in the cache still loads, without the Hub, and is still verified.
    assert ildata.load("hf://tester/net").fingerprint == cached.fingerprint
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    assert ildata.load("hf://tester/net").fingerprint == cached.fingerprint
    with pytest.raises(DataError, match="HF_HUB_OFFLINE"):
        push(store.path, "tester/net")


def test_push_without_token_or_bad_input(
    hub: HubServer, store: ildata.TrajectoryDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ildata.hub import parse_ref, push

    assert parse_ref("hf://a/b@v1") == ("a/b", "v1") and parse_ref("a/b") == ("a/b", None)
    with pytest.raises(DataError, match="not a Hub dataset reference"):
        parse_ref("hf://just-a-name")
    with pytest.raises(DataError, match="not an ildata dataset"):
        push(tmp_path, "tester/x")
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    with pytest.raises(DataError, match="401"):
        push(store.path, "tester/x")
    (store.path / "data" / "shard-00000.arrow").write_bytes(b"corrupted")
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with pytest.raises(DataError):
        push(store.path, "tester/x")


def _imitation_rows(ds: ildata.TrajectoryDataset) -> dict[str, list]:
    """One row per trajectory with imitation's columns, as its `push_to_hub` (datasets) writes them."""
    rows: dict[str, list] = {"obs": [], "acts": [], "infos": [], "terminal": [], "rews": []}
    for ep in ds:
        rows["obs"].append(ep.obs.tolist())
        rows["acts"].append(ep.acts.tolist())
        rows["infos"].append(["{}"] * len(ep))
        rows["terminal"].append(bool(ep.terminated or ep.truncated))
        rows["rews"].append(ep.rews.tolist())
    return rows


def test_pull_converts_imitation_hub_format(hub: HubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    _patch_datasets(monkeypatch, hub.endpoint)
    source = ildata.convert(LEGACY / "p4-cartpole-dataclass.pkl", tmp_path / "src")
    datasets.Dataset.from_dict(_imitation_rows(source)).push_to_hub("tester/imitation-cartpole")
    files = [f.path for f in __import__("huggingface_hub").HfApi().list_repo_tree("tester/imitation-cartpole", "data", repo_type="dataset")]
    assert files and all(f.endswith(".parquet") for f in files)

    ds = ildata.load("hf://tester/imitation-cartpole")
    assert len(ds) == 56 and ds.num_transitions == 27976  # MANIFEST.md
    assert float(ds.transitions().acts.sum()) == 14013.0
    np.testing.assert_allclose(ds.returns.mean(), 499.5714, atol=1e-4)
    assert not ds.episode_column("termination_known").any()  # imitation's terminal folds in truncation
    assert ds.info["provenance"]["source_format"] == "imitation-hf"

    dst = tmp_path / "pulled"
    from ildata.hub import pull

    pulled = pull("tester/imitation-cartpole", dst)
    assert pulled.path == dst and pulled.fingerprint == ds.fingerprint


def test_private_repository_is_readable_only_with_its_token(
    hub: HubServer, store: ildata.TrajectoryDataset, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import HfApi

    from ildata.hub import push

    push(store.path, "tester/secret", private=True)
    assert HfApi().repo_info("tester/secret", repo_type="dataset").private
    assert ildata.load("hf://tester/secret").fingerprint == store.fingerprint
    monkeypatch.delenv("HF_TOKEN")
    with pytest.raises(DataError, match="private one needs HF_TOKEN"):
        ildata.load("hf://tester/secret@main")
