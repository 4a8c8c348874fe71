"""Policy backtest: what a candidate gateway policy would have done to the traffic the lakehouse recorded."""
