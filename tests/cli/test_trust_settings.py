"""How a CLI command finds its identity for a running stack (cli/state.py
client_tls): from stack.json's pki_dir, plain text when asked or when the
stack is insecure, and channels.identity leaves the environment as it was."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from cli.state import StackState, client_tls
from common import channels, pki


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> StackState:
    monkeypatch.setenv("LIENTHONG_DATA_DIR", str(tmp_path / "elsewhere"))
    for name in (channels.TLS_CA, channels.TLS_CERT, channels.TLS_KEY):
        monkeypatch.delenv(name, raising=False)
    directory = pki.issue_all(tmp_path / "pki")
    return dataclasses.replace(StackState.defaults(), pki_dir=str(directory))


def test_the_cli_identity_comes_from_the_stacks_pki(state: StackState, tmp_path: Path) -> None:
    tls = client_tls(state)
    assert tls == channels.TlsSettings(
        tmp_path / "pki" / "ca.crt",
        tmp_path / "pki" / "lienthong-cli.crt",
        tmp_path / "pki" / "lienthong-cli.key",
    )
    conformance = client_tls(state, "conformance")
    assert conformance is not None and conformance.cert.name == "conformance.crt"


def test_plain_text_when_asked_or_when_the_stack_is_insecure(state: StackState) -> None:
    assert client_tls(state, insecure=True) is None
    assert client_tls(dataclasses.replace(state, insecure=True)) is None


def test_no_pki_anywhere_is_plain_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIENTHONG_DATA_DIR", str(tmp_path))
    for name in (channels.TLS_CA, channels.TLS_CERT, channels.TLS_KEY):
        monkeypatch.delenv(name, raising=False)
    assert client_tls(None) is None


def test_an_identity_for_a_block_then_the_environment_as_it_was(
    state: StackState, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(channels.INSECURE, "kept")
    tls = client_tls(state)
    with channels.identity(tls):
        assert channels.TlsSettings.from_env() == tls
        assert channels.INSECURE not in os.environ
    assert channels.TlsSettings.from_env() is None
    assert os.environ[channels.INSECURE] == "kept"
