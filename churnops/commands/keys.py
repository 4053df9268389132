"""`churnops registry keys init|show|rotate`: the Ed25519 keys that sign registered versions.

The signing key (``CHURNOPS_SIGNING_KEY_FILE``) belongs to registry writers only; serving and
batch scoring get the trusted public keys (``CHURNOPS_TRUSTED_KEYS_FILE``). On the embedded
default both live in ``<home>/keys`` and the first registration creates them, so ``init`` is
only needed to create keys before that (e.g. to hand the public key to serving). ``rotate``
makes a new signing key; the old public key stays trusted until its line is deleted from the
trusted-keys file.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from churnops.commands.common import fail, load_settings, plain_text

if TYPE_CHECKING:
    from registry_ext.signing import KeysReport

app = typer.Typer(help="Keys that sign registered versions: create, show, rotate.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document.")]


def _report(report: KeysReport, *, json_output: bool, title: str) -> None:
    if json_output:
        typer.echo(json.dumps(report.to_json()))
        return
    typer.echo(title)
    typer.echo(f"signing key file:  {plain_text(report.signing_key_file)}")
    typer.echo(f"trusted keys file: {plain_text(report.trusted_keys_file)}")
    if report.signing_key is None:
        typer.echo("signing key: none here (only registry writers hold it)")
    else:
        trusted = "trusted" if report.signing_key_trusted else "NOT in the trusted keys file"
        typer.echo(f"signing key id: {report.signing_key.key_id} ({trusted})")
        typer.echo(f"public key: {report.signing_key.public_key}")
    if report.retired_key_id:
        typer.echo(f"the previous key {report.retired_key_id} stays trusted: delete its line")
        typer.echo("from the trusted keys file once no version it signed is needed")
    typer.echo(f"trusted keys ({len(report.trusted)}):")
    for key in report.trusted:
        typer.echo(f"  {key.line()}")


def _run(action: str, json_output: bool) -> None:
    from churnops.wiring import key_files
    from registry_ext.signing import KeyFileError, init_keys, rotate_keys, show_keys

    settings = load_settings(json_output=json_output)
    files = key_files(settings)
    work = {"init": init_keys, "show": show_keys, "rotate": rotate_keys}[action]
    try:
        report = work(files=files)
    except (KeyFileError, OSError) as error:
        raise fail(str(error), json_output=json_output) from None
    titles = {
        "init": "created a signing key" if report.created else "the signing key exists already",
        "show": "registry signing keys",
        "rotate": "rotated: new signing key",
    }
    _report(report, json_output=json_output, title=titles[action])


@app.command("init")
def init(json_output: JsonOpt = False) -> None:
    """Create the signing key (if none) and trust its public key; idempotent."""
    _run("init", json_output)


@app.command("show")
def show(json_output: JsonOpt = False) -> None:
    """Show the signing key's id and public key, and every trusted key."""
    _run("show", json_output)


@app.command("rotate")
def rotate(json_output: JsonOpt = False) -> None:
    """Replace the signing key with a new one; the old public key stays trusted."""
    _run("rotate", json_output)
