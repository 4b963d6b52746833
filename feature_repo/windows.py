"""The rolling windows of the activity views: the ones params.yaml gives featurize.

`features.windows_days` drives both what `mtlrec featurize` writes (`clicks_7d`, ...) and the
fields the views declare, so changing it changes both (and `feast_apply` depends on the key).
"""

from pathlib import Path

import yaml

PARAMS_FILE = Path(__file__).resolve().parent.parent / "params.yaml"
WINDOWS_DAYS: tuple[int, ...] = tuple(
    int(days) for days in yaml.safe_load(PARAMS_FILE.read_text())["features"]["windows_days"]
)
