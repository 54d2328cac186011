"""The discovery's queries validate against the real subgraphs' schemas (reference_data/interfaces/subgraphs), and
a query the schema does not have is refused before anything is sent."""

from __future__ import annotations

import pytest
from graphql import build_schema, parse, validate

from api.cli import main
from chains.config import ChainConfig
from indexers.subgraphs import (
    AAVE_USERS,
    UNISWAP_OWNER_POSITIONS,
    UNISWAP_POSITIONS,
    SubgraphError,
    discover_aave,
    load_schema,
)


def ethereum_chain() -> ChainConfig:
    return ChainConfig.model_validate({
        "name": "ethereum", "chain_id": 1, "rpc_urls": ["http://127.0.0.1:1"],
        "multicall3": "0xcA11bde05977b3631167028862bE2a173976CA11",
        "native": {"symbol": "ETH", "decimals": 18, "asset": "ETH"},
    })


@pytest.mark.parametrize(("schema", "request_"), [
    ("aave-v3", AAVE_USERS), ("uniswap-v3", UNISWAP_POSITIONS), ("uniswap-v3", UNISWAP_OWNER_POSITIONS)])
def test_queries_validate_against_the_real_schema(schema: str, request_) -> None:  # type: ignore[no-untyped-def]
    assert validate(build_schema(load_schema(schema)), request_.document) == []


def test_the_schema_check_catches_a_misspelt_field() -> None:
    misspelt = parse("{ users(first: 10, where: {id_gt: \"\"}) { id reserves { currentATokenBalances } } }")
    (error,) = validate(build_schema(load_schema("aave-v3")), misspelt)
    assert "currentATokenBalances" in error.message


def test_entity_fields_keep_the_published_names() -> None:
    """The fields the issue names, as the published subgraphs spell them."""
    aave = build_schema(load_schema("aave-v3"))
    assert {"currentATokenBalance", "currentVariableDebt", "currentStableDebt", "reserve"} <= set(
        aave.get_type("UserReserve").fields)  # type: ignore[union-attr]
    assert {"symbol", "decimals", "underlyingAsset"} <= set(aave.get_type("Reserve").fields)  # type: ignore[union-attr]
    uniswap = build_schema(load_schema("uniswap-v3"))
    assert {"owner", "liquidity", "tickLower", "tickUpper", "pool"} <= set(
        uniswap.get_type("Position").fields)  # type: ignore[union-attr]
    assert "tickIdx" in uniswap.get_type("Tick").fields  # type: ignore[union-attr]


async def test_an_unreachable_subgraph_is_a_subgraph_error() -> None:
    with pytest.raises(SubgraphError, match="127.0.0.1:1"):
        await discover_aave("http://127.0.0.1:1/subgraphs/name/aave-v3/ethereum", ethereum_chain())


async def test_page_size_over_the_graph_limit_is_refused() -> None:
    with pytest.raises(ValueError, match="page_size"):
        await discover_aave("http://127.0.0.1:1/x", ethereum_chain(), page_size=1001)


@pytest.mark.parametrize(("url", "message"), [
    ("http://127.0.0.1:1/x", "is not PROTOCOL=URL"), ("compound=http://127.0.0.1:1/x", "'compound' is not one of")])
def test_population_subgraph_names_a_bad_url(url: str, message: str, tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from chains.config import ChainsFile, dump_chains_file

    chains_file = tmp_path / "chains.yaml"
    dump_chains_file(ChainsFile(chains=[ethereum_chain()]), chains_file)
    with pytest.raises(SystemExit) as exit_info:
        main(["population", "subgraph", "--chains", str(chains_file), "--chain", "ethereum", "--url", url,
              "--out", str(tmp_path / "pop.parquet")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --url: ") and message in err


def test_population_subgraph_names_an_unknown_chain(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from chains.config import ChainsFile, dump_chains_file

    chains_file = tmp_path / "chains.yaml"
    dump_chains_file(ChainsFile(chains=[ethereum_chain()]), chains_file)
    with pytest.raises(SystemExit) as exit_info:
        main(["population", "subgraph", "--chains", str(chains_file), "--chain", "base", "--url",
              "aave-v3=http://127.0.0.1:1/x", "--out", str(tmp_path / "pop.parquet")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: --chain: 'base' is not in")


def test_population_subgraph_unreachable_exits_2(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    from chains.config import ChainsFile, dump_chains_file

    chains_file = tmp_path / "chains.yaml"
    dump_chains_file(ChainsFile(chains=[ethereum_chain()]), chains_file)
    with pytest.raises(SystemExit) as exit_info:
        main(["population", "subgraph", "--chains", str(chains_file), "--chain", "ethereum", "--url",
              "aave-v3=http://127.0.0.1:1/subgraphs/name/aave", "--out", str(tmp_path / "pop.parquet")])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("error: --url: http://127.0.0.1:1/subgraphs/name/aave: ")
