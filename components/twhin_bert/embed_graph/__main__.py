"""``python -m twhin_bert.embed_graph --out DIR --graph DIR [--config FILE]``.

A minimal process entry (besides the ``twhin-bert embed_graph`` CLI command) used to run the
stage in its own process, e.g. by the kill -9 / resume test.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    """Parses the arguments and runs :func:`run_embed_graph`."""
    from twhin_bert.common.config import load_stage_config
    from twhin_bert.embed_graph.config import EmbedGraphConfig
    from twhin_bert.embed_graph.pbg import run_embed_graph

    parser = argparse.ArgumentParser(prog="python -m twhin_bert.embed_graph")
    parser.add_argument("--config", type=Path, default=None, help="YAML/JSON config file")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--graph", type=Path, required=True, help="build_graph folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg = load_stage_config(EmbedGraphConfig, args.config, "embed_graph")
    run_embed_graph(cfg, args.out, graph=args.graph)


if __name__ == "__main__":  # PBG's spawned workers import this module as __mp_main__
    main()
