"""Optimization (docs/optimization.md): grid or random search over engine config keys, each candidate a
full backtest of the live rules, walk-forward windows with an out-of-sample report, Monte Carlo over the
deal order for drawdown confidence, parallel over the cores."""
