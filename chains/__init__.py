"""Chain access shared by adapters and oracles: the chains file, async RPC clients, Multicall3 batching."""
