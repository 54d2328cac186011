"""Price and implied-vol clients, the aggregation policy and vol-surface fitting: the market snapshot."""
