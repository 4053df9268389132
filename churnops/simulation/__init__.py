"""The policy backtest behind ``churnops simulate``: history replayed month by month."""
