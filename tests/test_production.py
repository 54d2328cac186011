"""`metarisk service`: the settings file plus secrets from the environment; bad files exit 2 naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from api.cli import EXIT_BAD_INPUT, main
from api.production import load_service_chains, load_service_settings

ROOT = Path(__file__).resolve().parents[1]


def test_example_settings_load_with_secrets_from_the_environment() -> None:
    environ = {"METARISK_SIGNER_KEY": "0x" + "11" * 32, "METARISK_DERIBIT_KEYS": "ro-1:secret-1, ro-2:secret-2",
               "METARISK_DERIVE_SESSION_KEYS": "0xWallet:0xkey"}
    settings = load_service_settings(ROOT / "examples" / "service.yaml", environ)
    assert settings.venues.deribit == "https://www.deribit.com/api/v2"
    assert settings.credentials.deribit == {"ro-1": "secret-1", "ro-2": "secret-2"}
    assert settings.credentials.derive == {"0xWallet": "0xkey"}
    assert settings.signer_key == "0x" + "11" * 32
    assert settings.assets == ("BTC", "ETH", "SOL")
    assert settings.chains_file is None and settings.chainlink_chains == ()  # the image holds no chains file


def test_compose_file_runs_the_service_on_postgresql() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["service"]
    assert service["environment"]["DATABASE_URL"].startswith("postgresql://")
    assert service["depends_on"]["db"]["condition"] == "service_healthy"
    assert compose["services"]["demo"]["profiles"] == ["demo"]


def test_bad_settings_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "service.yaml"
    path.write_text("venues: {deribit: 5}\nreport_ttl_s: -1\n")
    assert main(["service", str(path)]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert "venues.deribit: Input should be a valid string" in err and "report_ttl_s" in err


def test_the_service_refuses_to_start_without_api_keys(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("METARISK_API_KEYS", raising=False)
    assert main(["service", str(ROOT / "examples" / "service.yaml")]) == EXIT_BAD_INPUT
    assert "METARISK_API_KEYS" in capsys.readouterr().err


CHAINS = """
chains:
  - name: ethereum
    chain_id: 1
    rpc_urls: ["http://127.0.0.1:8545"]
    multicall3: "0xcA11bde05977b3631167028862bE2a173976CA11"
    native: {symbol: ETH, decimals: 18, asset: ETH}
    price_feeds:
      - {asset: ETH, address: "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419", heartbeat_seconds: 3600,
         min_answer: 1000000, max_answer: 100000000000000}
"""


def test_a_relative_chains_file_is_read_beside_the_settings(tmp_path: Path) -> None:
    (tmp_path / "chains.yaml").write_text(CHAINS)
    (tmp_path / "service.yaml").write_text("chains_file: chains.yaml\nchainlink_chains: [ethereum]\n")
    settings = load_service_settings(tmp_path / "service.yaml", {})
    assert settings.chains_file == tmp_path / "chains.yaml"
    chains = load_service_chains(settings)
    assert chains is not None and chains.chain("ethereum").price_feeds[0].heartbeat_seconds == 3600


@pytest.mark.parametrize(
    ("settings_text", "reason"),
    [
        ("chains_file: missing.yaml\n", "chains_file: "),
        ("chainlink_chains: [ethereum]\n", "chainlink_chains: ethereum not among the chains of no chains file"),
        ("chains_file: chains.yaml\nchainlink_chains: [arbitrum]\n", "chainlink_chains: arbitrum not among"),
    ],
)
def test_a_chains_file_the_settings_cannot_use_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, settings_text: str,
    reason: str,
) -> None:
    (tmp_path / "chains.yaml").write_text(CHAINS)
    (tmp_path / "service.yaml").write_text(settings_text)
    monkeypatch.setenv("METARISK_API_KEYS", "k1")
    assert main(["service", str(tmp_path / "service.yaml")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err
    assert reason in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("environment", "variable"),
    [
        ({"METARISK_ATTESTATION_KEY": "0xnot-a-key"}, "METARISK_ATTESTATION_KEY"),
        ({"METARISK_ATTESTATION_KEYSTORE": "/nonexistent/key.json"}, "METARISK_ATTESTATION_KEYSTORE_PASSWORD"),
    ],
)
def test_a_bad_attestation_key_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], environment: dict[str, str], variable: str
) -> None:
    monkeypatch.setenv("METARISK_API_KEYS", "k1")
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    assert main(["service", str(ROOT / "examples" / "service.yaml")]) == EXIT_BAD_INPUT
    assert f"{variable}: " in capsys.readouterr().err


def test_a_verifier_that_is_not_an_address_exits_2_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METARISK_API_KEYS", "k1")
    (tmp_path / "service.yaml").write_text("attestation:\n  verifiers: {42161: '0xabc'}\n")
    assert main(["service", str(tmp_path / "service.yaml")]) == EXIT_BAD_INPUT
    assert "attestation.verifiers[42161]: " in capsys.readouterr().err


def test_the_demo_refuses_a_bad_attestation_key_before_starting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("METARISK_ATTESTATION_KEY", "0x12")
    assert main(["demo"]) == EXIT_BAD_INPUT
    assert "METARISK_ATTESTATION_KEY: " in capsys.readouterr().err
