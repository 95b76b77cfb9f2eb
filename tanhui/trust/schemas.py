"""The trust log's public API contract. Hashes, signatures and leaf bytes are standard base64."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

_HASH = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="


class TreeHeadOut(BaseModel):
    tree_size: int = Field(description="Number of leaves the tree head commits to.", examples=[42])
    root_hash: str = Field(description="RFC 9162 root hash (base64).", examples=[_HASH])
    timestamp: int = Field(
        description="Milliseconds since the Unix epoch (UTC) when signed.", examples=[1764000000000]
    )
    signature: str = Field(
        description=(
            "Ed25519 signature (base64) over the 50-byte TreeHeadSignature: 0x00, 0x01, "
            "uint64 timestamp, uint64 tree_size, 32-byte root hash, big-endian (docs/trust.md)."
        ),
        examples=["base64 of 64 bytes"],
    )


class InclusionProofOut(BaseModel):
    leaf_index: int = Field(description="Zero-based index of the leaf.", examples=[7])
    tree_size: int = Field(description="Size of the tree the proof is for.", examples=[42])
    hashes: list[str] = Field(description="Audit path, leaf to root (base64).", examples=[[_HASH]])


class ConsistencyProofOut(BaseModel):
    first: int = Field(description="Size of the older tree.", examples=[10])
    second: int = Field(description="Size of the newer tree.", examples=[42])
    hashes: list[str] = Field(
        description="RFC 9162 consistency proof (base64).", examples=[[_HASH]]
    )


class LeafOut(BaseModel):
    index: int = Field(description="Zero-based leaf index.", examples=[7])
    leaf: str = Field(description="The exact leaf bytes (base64): 0x01 then canonical JSON.")
    leaf_hash: str = Field(description="SHA-256(0x00 || leaf), base64.", examples=[_HASH])
    kind: str = Field(description="What the leaf records.", examples=["ledger.transfer"])
    ref: str = Field(description="Id of the record within its kind.", examples=["1234"])
    record: dict[str, Any] = Field(description="The leaf's JSON, decoded for reading.")
    integrated_at: str = Field(description="When the leaf entered the tree (RFC 3339 UTC).")


class LeafLookupOut(BaseModel):
    kind: str = Field(examples=["ledger.transfer"])
    ref: str = Field(examples=["1234"])
    status: str = Field(
        description="`integrated` (has an index) or `pending` (queued, integrated within seconds).",
        examples=["integrated"],
    )
    leaf_index: int | None = Field(description="Index once integrated.", examples=[7])
    leaf_hash: str = Field(description="SHA-256(0x00 || leaf), base64.", examples=[_HASH])


class PublicKeyOut(BaseModel):
    algorithm: str = Field(examples=["Ed25519"])
    public_key_pem: str = Field(description="SubjectPublicKeyInfo PEM.")
    public_key: str = Field(description="Raw 32-byte Ed25519 public key, base64.")
    key_id: str = Field(description="SHA-256 of the raw public key, base64.")
