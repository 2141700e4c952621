"""The load-test tool is an extra: the server runs without rich and hdrhistogram, and
`livepush loadtest` without them says exactly what to install.

Each check runs in a fresh interpreter whose `sys.modules` marks the extra's modules as absent,
which makes their import fail as on a plain `pip install livepush`.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from server.loadtest import EXTRA, REQUIRED

ROOT = Path(__file__).resolve().parents[2]
BLOCK = "import sys\nfor name in ('rich', 'hdrh'):\n    sys.modules[name] = None\n"  # httpx: the server's (webhooks)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", BLOCK + code], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)


def test_every_server_module_imports_without_the_load_test_extra() -> None:
    """Every module of the server package but server.loadtest imports with rich and hdrh missing."""
    result = run_python(
        "import pkgutil, importlib, server\n"
        "names = [m.name for m in pkgutil.walk_packages(server.__path__, 'server.')\n"
        "         if not m.name.startswith('server.loadtest.') and m.name != 'server.__main__']\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n")
    assert result.returncode == 0, result.stderr
    assert int(result.stdout) > 20


def test_livepush_loadtest_without_the_extra_names_the_install_command() -> None:
    """`livepush loadtest` on a plain install exits 2 with `pip install 'livepush[loadtest]'`."""
    result = run_python("from server.cli import main\nraise SystemExit(main(['loadtest', '--readers', '1']))\n")
    assert result.returncode == 2, result.stderr
    assert EXTRA in result.stderr and "rich, hdrhistogram" in result.stderr


def test_the_extra_lists_what_the_tool_imports_and_the_server_does_not() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extra = {requirement.split(">")[0] for requirement in project["optional-dependencies"]["loadtest"]}
    runtime = {requirement.split(">")[0].split(";")[0] for requirement in project["dependencies"]}
    distributions = {distribution for _, distribution in REQUIRED}
    assert distributions <= extra
    assert not distributions & runtime
    assert "livepush[loadtest]" in project["optional-dependencies"]["test"]  # scripts/test installs .[dev]
