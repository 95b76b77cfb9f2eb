"""Errors the methodology part raises; kit.http renders each as a problem document."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from tanhui.kit.errors import Conflict, NotFound, TanhuiError


@dataclass(frozen=True, slots=True)
class LoadError:
    """One problem in a methodology or factor-table file, located by file, line and field path."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field or '(file)'}: {self.message}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class MethodologyInvalid(TanhuiError):
    """A methodology file failed validation; `errors` lists every problem, not just the first."""

    status_code = 422
    code = "methodology_invalid"

    def __init__(self, errors: list[LoadError]) -> None:
        first = str(errors[0]) if errors else "invalid methodology"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        super().__init__(
            f"Methodology file is invalid: {first}{more}",
            field=errors[0].field if errors else None,
            extra={"errors": [e.to_dict() for e in errors]},
        )
        self.errors = errors


class InvalidMethodologyInput(TanhuiError):
    """A calculation input is missing, not a number or outside the methodology's declared range."""

    status_code = 422
    code = "invalid_quantity"

    def __init__(self, message: str, *, field: str, code: str = "invalid_quantity") -> None:
        super().__init__(message, code=code, field=field)


class FactorNotInForce(TanhuiError):
    """No row of a factor table applies to the record's date and region (e.g. a date before the
    first published factor): the calculation cannot be done honestly, so it is refused."""

    status_code = 422
    code = "factor_not_in_force"


class MethodologyNotFound(NotFound):
    code = "methodology_not_found"


class MethodologyVersionExists(Conflict):
    code = "methodology_version_exists"
