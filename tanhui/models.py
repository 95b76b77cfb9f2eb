"""Every part's tables, imported so that Base.metadata is complete (migrations, `alembic check`)."""

from tanhui.activity import models as activity_models  # noqa: F401
from tanhui.identity import models as identity_models  # noqa: F401
from tanhui.incentives import models as incentives_models  # noqa: F401
from tanhui.kit import platform_settings  # noqa: F401
from tanhui.ledger import models as ledger_models  # noqa: F401
from tanhui.mall import models as mall_models  # noqa: F401
from tanhui.methodology import models as methodology_models  # noqa: F401
from tanhui.projects import models as projects_models  # noqa: F401
from tanhui.registry import models as registry_models  # noqa: F401
from tanhui.trust import models as trust_models  # noqa: F401
