"""Shared fixtures: an isolated MLflow store and work dir, real tweets (the UMSAB sample kept
in tests/data, and optionally a larger data folder), and a session-wide chain of stage
outputs on generated demo data (each built once).

Real tweets: ``sample_data`` is the sample in the repository (always present; every default
test uses it). ``full_data`` is a larger folder in the TweetEval/UMSAB layout, the one the
benchmarks read (``$TWHIN_BERT_BENCH_DATA``, else ``../shared/data`` beside the checkout);
tests that use it are skipped when it is absent, so a bare clone passes.

``gcs_emulator`` is a real GCS emulator on 127.0.0.1 for tests of gs:// paths.

Fixtures of the chain (session scope, built lazily on first use):
``demo_dir`` -> ``ingested_dir`` -> ``graph_dir`` -> ``graph_embeddings_dir`` -> ``pairs_dir``;
``tokenizer_dir`` from ``ingested_dir``.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: The UMSAB sample kept in the repository (see tests/data/README.md).
SAMPLE_DATA = ROOT / "tests" / "data"
#: Where a developer checkout keeps the full data when $TWHIN_BERT_BENCH_DATA is unset.
SIBLING_DATA = ROOT.parent / "shared" / "data"

# Small enough for 2 cores, large enough for the planted signal to show.
DEMO_USERS = 400
DEMO_TWEETS = 2000
DEMO_SEED = 7


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test session gets its own work dir and SQLite MLflow store; no progress bars."""
    home = tmp_path_factory.mktemp("twhin-home")
    os.environ["TWHIN_BERT_HOME"] = str(home)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{home / 'mlflow.db'}"
    os.environ["TWHIN_BERT_PROGRESS"] = "0"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The real-tweets sample in the repository: ``umsab/<language>/{train,val}_*.txt``."""
    return SAMPLE_DATA


@pytest.fixture(scope="session")
def full_data() -> Path:
    """The full data folder the benchmarks read (TweetEval, UMSAB); skips the test when absent.

    Only for slow or extended tests: a behaviour's default test uses ``sample_data``.
    """
    from twhin_bert.common.bench import BENCH_DATA_ENV

    given = os.environ.get(BENCH_DATA_ENV)
    if given:
        if not Path(given).is_dir():
            pytest.fail(f"${BENCH_DATA_ENV}={given}: not a folder (expected TweetEval/UMSAB data)")
        return Path(given)
    if SIBLING_DATA.is_dir():
        return SIBLING_DATA
    pytest.skip(f"no full data: set ${BENCH_DATA_ENV} to a TweetEval/UMSAB folder")


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from twhin_bert.demo_data.generate import generate_demo

    out = tmp_path_factory.mktemp("demo")
    generate_demo(out, users=DEMO_USERS, tweets=DEMO_TWEETS, seed=DEMO_SEED)
    return out


@pytest.fixture(scope="session")
def ingested_dir(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from twhin_bert.ingest.config import IngestConfig
    from twhin_bert.ingest.ingest import run_ingest

    out = tmp_path_factory.mktemp("stages") / "ingested"
    run_ingest(
        IngestConfig(),
        out,
        tweets=[str(demo_dir / "tweets.jsonl")],
        engagements=[str(demo_dir / "engagements.jsonl")],
    )
    return out


@pytest.fixture(scope="session")
def graph_dir(ingested_dir: Path) -> Path:
    from twhin_bert.build_graph.config import BuildGraphConfig
    from twhin_bert.build_graph.graph import run_build_graph

    out = ingested_dir.parent / "graph"
    run_build_graph(BuildGraphConfig(), out, ingested=ingested_dir)
    return out


@pytest.fixture(scope="session")
def graph_embeddings_dir(graph_dir: Path) -> Path:
    from twhin_bert.embed_graph.config import EmbedGraphConfig
    from twhin_bert.embed_graph.pbg import run_embed_graph

    out = graph_dir.parent / "graph_embeddings"
    run_embed_graph(EmbedGraphConfig(), out, graph=graph_dir)
    return out


@pytest.fixture(scope="session")
def pairs_dir(demo_dir: Path, ingested_dir: Path, graph_embeddings_dir: Path) -> Path:
    from twhin_bert.mine_pairs.config import MinePairsConfig
    from twhin_bert.mine_pairs.mine import run_mine_pairs

    out = ingested_dir.parent / "pairs"
    run_mine_pairs(
        MinePairsConfig(),
        out,
        ingested=ingested_dir,
        graph_embeddings=graph_embeddings_dir,
        parallel=str(demo_dir / "parallel.jsonl"),
        truth=str(demo_dir / "truth" / "tweet_topics.parquet"),
    )
    return out


@pytest.fixture(scope="session")
def tokenizer_dir(ingested_dir: Path) -> Path:
    from twhin_bert.train_tokenizer.config import TrainTokenizerConfig
    from twhin_bert.train_tokenizer.tokenizer import run_train_tokenizer

    out = ingested_dir.parent / "tokenizer"
    run_train_tokenizer(TrainTokenizerConfig(), out, ingested=ingested_dir)
    return out


@pytest.fixture()
def gcs_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A real GCS emulator (``gcp-storage-emulator``) on 127.0.0.1, in memory; ``io``'s client
    talks to it while the test runs. Yields that client (create buckets with it)."""
    from gcp_storage_emulator.server import create_server
    from twhin_bert.common import io

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = create_server("127.0.0.1", port, in_memory=True)
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    io.gcs_client.cache_clear()
    try:
        yield io.gcs_client()
    finally:
        io.gcs_client.cache_clear()
        server.stop()
