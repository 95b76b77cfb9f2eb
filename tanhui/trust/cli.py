"""`tanhui trust ...`: verify proofs offline, audit the log, integrate and sign on demand."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

app = typer.Typer(help="Trust log: signed tree heads, proofs, audit.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.secho(f"FAILED: {message}", err=True, fg="red")
    return typer.Exit(1)


@app.command()
def verify(
    bundle: Path = typer.Argument(
        ..., help="Proof bundle JSON (from /v1/trust/bundle/N), or a consistency file."
    ),
    public_key: Path | None = typer.Option(
        None, "--public-key", help="The log's Ed25519 public key (PEM), obtained independently."
    ),
) -> None:
    """Check a proof offline: only the file and the public key, no network, no database."""
    from tanhui.trust import merkle, signing
    from tanhui.trust import verify as verifier

    try:
        data: Any = json.loads(bundle.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _fail(f"cannot read {bundle}: {exc}") from None
    try:
        key = signing.load_public_key(public_key.read_bytes()) if public_key else None
        if isinstance(data, dict) and "first" in data and "second" in data:
            if key is None:
                raise merkle.ProofError("a consistency file needs --public-key")
            s1, s2 = verifier.verify_consistency_file(data, key)
            typer.echo(f"OK: the signed tree of size {s1} is a prefix of the one of size {s2}")
            return
        result = verifier.verify_bundle(data, key)
    except (merkle.ProofError, OSError) as exc:
        raise _fail(str(exc)) from None
    rec = result.record
    typer.echo(
        f"OK: leaf {result.leaf_index} ({rec['kind']} {rec['ref']}) is in the log "
        f"of size {result.tree_size}, root {base64.b64encode(result.root_hash).decode()}"
    )
    if result.key_from_bundle:
        typer.secho(
            "note: checked with the key inside the bundle; pass --public-key with the key the "
            "platform publishes to know the log is the platform's",
            fg="yellow",
        )


@app.command()
def audit() -> None:
    """Recompute the whole log from the database; exit 1 naming each leaf that no longer matches
    its record, and each record (ledger transfer, registry event) that has no leaf."""
    # The re-encoders know the parts whose records become leaves, so they live in tanhui.wiring,
    # which this command (an edge, like the app factory) may import; the trust service may not.
    from tanhui import wiring
    from tanhui.kit.db import session_scope
    from tanhui.trust import service as trust_service

    wiring.install()
    with session_scope() as session:
        total = trust_service.tree_size(session)
        with _progress() as progress:
            task = progress.add_task("auditing", total=total)
            problems = trust_service.audit(
                session,
                wiring.TRUST_REENCODERS,
                progress=lambda n: progress.advance(task, n),
            )
        problems += wiring.unlogged_records(session)
    for p in problems:
        typer.secho(f"MISMATCH {p}", err=True, fg="red")
    if problems:
        raise typer.Exit(1)
    typer.echo(f"OK: {total} leaves match their records; nodes, root and tree heads check out")


@app.command()
def integrate(
    batch: int = typer.Option(10000, min=1, help="Leaves per transaction."),
) -> None:
    """Append every queued record to the tree now."""
    from tanhui.kit.db import session_scope
    from tanhui.trust import service as trust_service

    with session_scope() as session:
        queued = trust_service.queue_length(session)
    done = 0
    with _progress() as progress:
        task = progress.add_task("integrating", total=queued)
        while True:
            with session_scope() as session:
                n = trust_service.integrate(session, limit=batch)
            if not n:
                break
            done += n
            progress.advance(task, n)
    with session_scope() as session:
        size = trust_service.tree_size(session)
    typer.echo(f"integrated {done} leaves; tree size {size}")


@app.command()
def publish(force: bool = typer.Option(False, help="Sign even if the tree did not grow.")) -> None:
    """Integrate the queue and sign a new tree head."""
    from tanhui.kit.db import session_scope
    from tanhui.trust import service as trust_service

    with session_scope() as session:
        sth = trust_service.publish(session, force=force)
    typer.echo(json.dumps(sth.to_json(), indent=2))


@app.command()
def sth() -> None:
    """Print the latest signed tree head (JSON, as the API serves it)."""
    from tanhui.kit.db import session_scope
    from tanhui.trust import service as trust_service

    with session_scope() as session:
        head = trust_service.latest_sth(session)
    if head is None:
        raise _fail("no tree head signed yet; run `tanhui trust publish`")
    typer.echo(json.dumps(head.to_json(), indent=2))


@app.command("public-key")
def public_key_cmd() -> None:
    """Print the tree-head signing key as PEM (generated on first use)."""
    from tanhui.trust import service as trust_service

    typer.echo(trust_service.public_key_info()["public_key_pem"], nl=False)


@app.command()
def bundle(
    leaf_index: int = typer.Argument(..., min=0, help="Leaf index."),
    output: Path | None = typer.Option(None, "-o", "--output", help="File (default: stdout)."),
) -> None:
    """Write the proof bundle of one leaf (what the web offers for download)."""
    from tanhui.kit.db import session_scope
    from tanhui.trust import service as trust_service

    with session_scope() as session:
        data = trust_service.proof_bundle(session, leaf_index)
    text = json.dumps(data, indent=2, ensure_ascii=False)
    if output is None:
        typer.echo(text)
    else:
        output.write_text(text + "\n")
        typer.echo(f"wrote {output}")


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    )
