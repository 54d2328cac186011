"""`metarisk service`: the settings file plus secrets from the environment; bad files exit 2 naming the field."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from api.cli import EXIT_BAD_INPUT, main
from api.production import load_service_settings

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
    assert settings.chainlink_chains == ("ethereum",)  # the L1 feeds: one chain, one vote per asset


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
