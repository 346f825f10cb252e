"""The names evaluate gives the models it scores, where more than one stage relies on them.

evaluate's config takes its defaults from here (``candidate``, ``baseline``, ``base``); the
retraining pipeline names the champion's model :data:`CHAMPION` when it is evaluate's
baseline, and register_model reads that model's same-split numbers under the same name.
"""

from __future__ import annotations

#: The model this run trained (evaluate's ``candidate``; its numbers become ``primary``).
CANDIDATE = "twhin_bert"
#: Its MLM-only ablation twin (evaluate's default ``baseline`` when pretraining).
MLM_ONLY = "mlm_only"
#: The untouched base encoder that pretraining continued (evaluate's ``base``).
BASE_ENCODER = "base"
#: The registered champion, evaluate's ``baseline`` when retraining.
CHAMPION = "champion"
