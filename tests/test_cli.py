"""The infocam command: version, help, and one-line errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

import infocam
from infocam.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out.strip() == f"infocam {infocam.__version__}"


def test_help_lists_commands(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "usage: infocam" in out and "reproduce" in out


def test_no_command_prints_help(capsys):
    assert main([]) == 0
    assert "usage: infocam" in capsys.readouterr().out


def test_unknown_option_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--no-such-flag"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("infocam: error:")


def test_user_error_inside_a_command_is_one_line(capsys, monkeypatch):
    import infocam.cli as cli

    def add_boom(sub):
        p = sub.add_parser("boom")
        p.set_defaults(func=lambda args: infocam.class_prior([0, 0], 2))

    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, add_boom])
    monkeypatch.delenv("INFOCAM_DEBUG", raising=False)
    assert main(["boom"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("infocam: error: labels has no sample of class(es) 1")


def test_console_script_runs_as_module():
    out = subprocess.run(
        [sys.executable, "-m", "infocam", "--version"], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().startswith("infocam ")


def test_missing_file_error_is_one_line(capsys, monkeypatch):
    import infocam.cli as cli
    from infocam.errors import DatasetNotFoundError

    def add_missing(sub):
        p = sub.add_parser("missing")

        def run(args):
            open("/nonexistent/file.csv")

        p.set_defaults(func=run)

    def add_dataset(sub):
        p = sub.add_parser("nodata")

        def run(args):
            raise DatasetNotFoundError("MNIST not found: looked in /x/MNIST/raw", "/x")

        p.set_defaults(func=run)

    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, add_missing, add_dataset])
    monkeypatch.delenv("INFOCAM_DEBUG", raising=False)
    assert main(["missing"]) == 2
    assert capsys.readouterr().err == (
        "infocam: error: /nonexistent/file.csv: No such file or directory\n"
    )
    assert main(["nodata"]) == 2
    assert capsys.readouterr().err == "infocam: error: MNIST not found: looked in /x/MNIST/raw\n"


def test_subpackages_load_lazily():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, infocam; assert 'torchvision' not in sys.modules; "
            "print(infocam.models.vgg16_gap.__name__, infocam.data.CUB200.__name__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["vgg16_gap", "CUB200"]


def test_warnings_are_one_line(capsys, monkeypatch):
    import warnings

    import infocam.cli as cli
    from infocam.errors import UnverifiedCheckpointWarning

    def add_warn(sub):
        p = sub.add_parser("warn")

        def run(args):
            message = "best.pt has no checksum: it loads unverified"
            warnings.warn(message, UnverifiedCheckpointWarning, stacklevel=1)
            return 0

        p.set_defaults(func=run)

    monkeypatch.setattr(cli, "COMMANDS", [*cli.COMMANDS, add_warn])
    monkeypatch.delenv("INFOCAM_DEBUG", raising=False)
    assert main(["warn"]) == 0
    err = capsys.readouterr().err
    assert err == "infocam: warning: best.pt has no checksum: it loads unverified\n"
