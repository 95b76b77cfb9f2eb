"""Registry use cases: issue, transfer, retire, cancel serial-numbered credits; public views; the check.

Every moving use case is one event row, the blocks it closes and creates, one ledger transfer of the
batch's credit asset and one trust-log leaf, all in the caller's transaction (flush, never commit).
Serial format and the block rules: docs/registry.md.

One module per concern: `common` (constants, errors, serial numbers, accounts), `events` (the
moving use cases), `personal` (aggregated personal reductions), `views` (public reads) and
`check`. Callers import this package: `from tanhui.registry import service as registry_service`.
"""

from __future__ import annotations

from tanhui.registry.service.check import (
    check,
    totals,
)
from tanhui.registry.service.common import (
    CREDIT_UNIT,
    EVENT_KINDS,
    LEAF_KINDS,
    LIVE_STATUSES,
    PERSONAL_PROJECT_NUMBER,
    PLATFORM_OWNER,
    PURPOSES,
    SERIAL_PREFIX,
    TONNE_MG,
    BatchNotFound,
    InsufficientCredits,
    NothingToIssue,
    RegistryAccountNotFound,
    RetirementNotFound,
    account_for_organisation,
    asset_code,
    batch_prefix,
    get_account,
    may_act_for,
    platform_account,
    render_serial,
    retirement_number,
    serial_prefix,
)
from tanhui.registry.service.events import (
    cancel,
    event_payload,
    event_refs,
    get_batch,
    issue,
    reencode,
    retire,
    transfer,
)
from tanhui.registry.service.personal import (
    issue_personal_batch,
    personal_carry_mg,
)
from tanhui.registry.service.views import (
    BatchView,
    BlockView,
    HoldingView,
    RetirementView,
    batch_view,
    batches_for_source,
    events_of_batch,
    get_retirement,
    holdings,
    list_batches,
    list_blocks,
    list_retirements,
)

__all__ = [
    "CREDIT_UNIT",
    "EVENT_KINDS",
    "LEAF_KINDS",
    "LIVE_STATUSES",
    "PERSONAL_PROJECT_NUMBER",
    "PLATFORM_OWNER",
    "PURPOSES",
    "SERIAL_PREFIX",
    "TONNE_MG",
    "BatchNotFound",
    "BatchView",
    "BlockView",
    "HoldingView",
    "InsufficientCredits",
    "NothingToIssue",
    "RegistryAccountNotFound",
    "RetirementNotFound",
    "RetirementView",
    "account_for_organisation",
    "asset_code",
    "batch_prefix",
    "batch_view",
    "batches_for_source",
    "cancel",
    "check",
    "event_payload",
    "event_refs",
    "events_of_batch",
    "get_account",
    "get_batch",
    "get_retirement",
    "holdings",
    "issue",
    "issue_personal_batch",
    "list_batches",
    "list_blocks",
    "list_retirements",
    "may_act_for",
    "personal_carry_mg",
    "platform_account",
    "reencode",
    "render_serial",
    "retire",
    "retirement_number",
    "serial_prefix",
    "totals",
    "transfer",
]
