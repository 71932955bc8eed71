"""The XGBoost entry filter (docs/ml.md): features, walk-forward training, the model registry and the
filter the intake and the backtester call."""

import os

# xgboost's OpenMP threads wait for each other at every step of a tree. By default they spin while they
# wait, and on a machine whose cores are busy with other work (the engine's processes, a backtest) a
# spinning thread holds the core its sibling needs: a year of 5m candles then trains in a minute instead of
# three seconds. Passive waiting yields the core. Read once, when libgomp loads with xgboost, so set here,
# before any module of this package imports it; an operator's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
