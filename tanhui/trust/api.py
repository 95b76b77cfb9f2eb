"""Public trust-log endpoints: no login, everything needed to check the log from outside."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy.orm import Session

from tanhui.kit.http import get_session
from tanhui.trust import leaf as leaf_codec
from tanhui.trust import schemas
from tanhui.trust import service as trust_service
from tanhui.trust.service import b64

router = APIRouter(prefix="/v1/trust", tags=["trust"])

# Indexes are uint64 in the RFC but BIGINT in our tables; anything larger cannot exist.
_MAX = 2**63 - 1


@router.get("/sth", response_model=schemas.TreeHeadOut, summary="Latest signed tree head")
def get_sth(session: Session = Depends(get_session)) -> dict[str, Any]:
    sth = trust_service.latest_sth(session)
    if sth is None:
        # A fresh installation has no head yet; sign the current (maybe empty) tree once.
        sth = trust_service.publish(session)
    return sth.to_json()


@router.get(
    "/proof/inclusion",
    response_model=schemas.InclusionProofOut,
    summary="Inclusion proof (RFC 9162 §2.1.3) of a leaf in a tree of a given size",
)
def get_inclusion_proof(
    leaf_index: int = Query(ge=0, le=_MAX, description="Zero-based leaf index."),
    tree_size: int = Query(ge=1, le=_MAX, description="Tree size, e.g. from /sth."),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    proof = trust_service.inclusion_proof(session, leaf_index, tree_size)
    return {"leaf_index": leaf_index, "tree_size": tree_size, "hashes": [b64(h) for h in proof]}


@router.get(
    "/proof/consistency",
    response_model=schemas.ConsistencyProofOut,
    summary="Consistency proof (RFC 9162 §2.1.4) between two tree sizes",
)
def get_consistency_proof(
    first: int = Query(ge=0, le=_MAX, description="Older tree size."),
    second: int = Query(ge=0, le=_MAX, description="Newer tree size."),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    proof = trust_service.consistency_proof(session, first, second)
    return {"first": first, "second": second, "hashes": [b64(h) for h in proof]}


@router.get("/leaves/{index}", response_model=schemas.LeafOut, summary="One leaf, exact bytes")
def get_leaf(
    index: int = Path(ge=0, le=_MAX), session: Session = Depends(get_session)
) -> dict[str, Any]:
    rec = trust_service.get_leaf(session, index)
    return {
        "index": rec.leaf_index,
        "leaf": b64(rec.leaf),
        "leaf_hash": b64(rec.leaf_hash),
        "kind": rec.kind,
        "ref": rec.ref,
        "record": leaf_codec.decode(rec.leaf),
        "integrated_at": leaf_codec.rfc3339(rec.integrated_at),
    }


@router.get(
    "/lookup",
    response_model=schemas.LeafLookupOut,
    summary="Where a record is in the log (e.g. kind=ledger.transfer&ref=<transfer id>)",
)
def lookup(
    kind: str = Query(min_length=1, max_length=64, examples=["ledger.transfer"]),
    ref: str = Query(min_length=1, max_length=128, examples=["1234"]),
    session: Session = Depends(get_session),
) -> dict[str, Any]:
    info = trust_service.leaf_for(session, kind, ref)
    if info is None:
        raise trust_service.LeafNotFound(f"{kind} {ref} is not in the log", field="ref")
    return {
        "kind": info.kind,
        "ref": info.ref,
        "status": info.status,
        "leaf_index": info.leaf_index,
        "leaf_hash": b64(info.leaf_hash),
    }


@router.get(
    "/leaves/{index}/proof",
    summary="Same as /bundle/{index}: the proof bundle of a leaf",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
@router.get(
    "/bundle/{index}",
    summary="Downloadable proof bundle for `tanhui trust verify` (leaf, proof, signed head, key)",
    response_class=Response,
    responses={200: {"content": {"application/json": {}}}},
)
def get_bundle(
    index: int = Path(ge=0, le=_MAX), session: Session = Depends(get_session)
) -> Response:
    bundle = trust_service.proof_bundle(session, index)
    return Response(
        json.dumps(bundle, indent=2, ensure_ascii=False),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="tanhui-proof-{index}.json"'},
    )


@router.get("/public-key", response_model=schemas.PublicKeyOut, summary="Tree-head signing key")
def get_public_key() -> dict[str, str]:
    return trust_service.public_key_info()


@router.get("/public-key.pem", response_class=PlainTextResponse, summary="Signing key as PEM")
def get_public_key_pem() -> str:
    return trust_service.public_key_info()["public_key_pem"]


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the integrator (every second) and scheduled tree heads while the app serves."""
    worker = trust_service.start_background_integrator(app.state.session_factory, interval_s=1.0)
    try:
        yield
    finally:
        worker.stop()
