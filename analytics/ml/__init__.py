"""The XGBoost entry filter (docs/ml.md): features, walk-forward training, the model registry and the
filter the intake and the backtester call."""
