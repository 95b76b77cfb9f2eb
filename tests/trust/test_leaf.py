from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tanhui.trust import leaf, merkle

EXAMPLE_PAYLOAD = leaf.transfer_payload(
    transfer_id=42,
    kind="activity.credit",
    created_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
    reverses_id=None,
    postings=[(1, "CO2E_MG", -1500), (7, "CO2E_MG", 1500)],
    metadata={"activity_id": 9},
    idempotency_key="activity:9",
)


class TestEncoding:
    def test_documented_example(self) -> None:
        # The example in docs/trust.md; if this changes, the format changed and the docs must too.
        data = leaf.encode(leaf.LEDGER_TRANSFER, "42", EXAMPLE_PAYLOAD)
        assert data[:1] == b"\x01"
        assert data[1:].startswith(b'{"data":{"created_at":"2026-01-02T03:04:05.000006Z",')
        assert b" " not in data
        assert merkle.leaf_hash(data) == hashlib.sha256(b"\x00" + data).digest()
        assert len(data) == 431
        assert merkle.leaf_hash(data).hex() == (
            "ee62e1c34b2657eef5873670f0057fb4aba3269b6c92af8254abb6c9fed02fee"
        )

    def test_sorted_keys_and_utf8(self) -> None:
        data = leaf.encode("k", "r", {"b": 1, "a": "碳"})
        assert data == b'\x01{"data":{"a":"' + "碳".encode() + b'","b":1},"kind":"k","ref":"r"}'

    def test_timestamps_normalised_to_utc(self) -> None:
        east8 = timezone(timedelta(hours=8))
        assert leaf.rfc3339(datetime(2026, 1, 1, 8, tzinfo=east8)) == "2026-01-01T00:00:00.000000Z"
        with pytest.raises(leaf.LeafEncodingError):
            leaf.rfc3339(datetime(2026, 1, 1))

    @pytest.mark.parametrize("bad", [1.5, Decimal("1"), {1: "x"}, object()])
    def test_rejects_non_canonical_values(self, bad: object) -> None:
        with pytest.raises(leaf.LeafEncodingError):
            leaf.encode("k", "r", {"x": bad})

    @pytest.mark.parametrize(
        "posting", [(1, "POINT", 1.5), (1, "POINT", True), ("1", "POINT", 2), (1, 2, 2)]
    )
    def test_transfer_postings_are_checked_as_they_are_built(self, posting: tuple) -> None:
        # The postings list skips the generic walk in `encode`, so its own check must refuse these.
        with pytest.raises(leaf.LeafEncodingError):
            leaf.transfer_payload(
                transfer_id=1,
                kind="k",
                created_at=datetime(2026, 1, 1, tzinfo=UTC),
                reverses_id=None,
                postings=[posting, (2, "POINT", -2)],
                metadata={},
                idempotency_key="k",
            )

    @given(
        st.lists(
            st.tuples(
                st.integers(min_value=-(2**63), max_value=2**63),
                st.text(max_size=12),
                st.integers(min_value=-(2**63), max_value=2**63),
            ),
            max_size=40,
        ),
        st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=4),
    )
    def test_postings_text_is_what_json_writes(
        self, postings: list[tuple[int, str, int]], metadata: dict[str, object]
    ) -> None:
        # The postings' canonical text is written as they are checked; the leaf must be byte for
        # byte what the generic canonical form of the same plain objects gives.
        payload = leaf.transfer_payload(
            transfer_id=7,
            kind="activity.credit",
            created_at=datetime(2026, 1, 2, tzinfo=UTC),
            reverses_id=None,
            postings=postings,
            metadata=metadata,
            idempotency_key="k",
        )
        plain = {**payload, "postings": [dict(p) for p in payload["postings"]]}
        expected = json.dumps(
            {"data": plain, "kind": "ledger.transfer", "ref": "7"},
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        )
        assert leaf.encode("ledger.transfer", "7", payload) == b"\x01" + expected.encode()
        assert leaf.encode("ledger.transfer", "7", plain) == b"\x01" + expected.encode()

    def test_decode_roundtrip_and_rejects_variants(self) -> None:
        data = leaf.encode(leaf.LEDGER_TRANSFER, "42", EXAMPLE_PAYLOAD)
        assert leaf.decode(data)["data"] == EXAMPLE_PAYLOAD
        with pytest.raises(leaf.LeafEncodingError):
            leaf.decode(b"\x01" + data[1:].replace(b":", b": ", 1))
        with pytest.raises(leaf.LeafEncodingError):
            leaf.decode(b"\x02" + data[1:])

    def test_no_personal_data_in_transfer_leaves(self) -> None:
        payload = leaf.transfer_payload(
            transfer_id=1,
            kind="k",
            created_at=datetime(2026, 1, 1, tzinfo=UTC),
            reverses_id=None,
            postings=[],
            metadata={"phone": "13800138000"},
            idempotency_key="user 13800138000",
        )
        assert b"13800138000" not in leaf.encode("ledger.transfer", "1", payload)

    def test_metadata_digest_is_stable_for_lenient_values(self) -> None:
        assert leaf.digest({"a": Decimal("1.50"), "b": (1, 2)}) == leaf.digest(
            {"b": [1, 2], "a": Decimal("1.50")}
        )
