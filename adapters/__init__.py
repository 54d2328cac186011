"""One module per venue: a venue's raw state turned into schema positions, with provenance."""

from adapters.aave_v3 import AaveV3Adapter
from adapters.gmx_v2 import GmxV2Adapter
from adapters.onchain import OnchainAdapter
from adapters.uniswap_v3 import UniswapV3Adapter
from adapters.wallet import WalletAdapter

# The on-chain adapters a wallet refresh runs on every chain (each skips chains without its venue).
ONCHAIN_ADAPTERS: tuple[OnchainAdapter, ...] = (WalletAdapter(), AaveV3Adapter(), UniswapV3Adapter(), GmxV2Adapter())
