"""Admin analytics: periods, queries, reports, charts, exports, the digest and the summary tables.

Importing this package registers the summary tables (`bot.analytics.models`) on the shared `Base`, so
`create_schema` creates them."""
from bot.analytics import models as models
