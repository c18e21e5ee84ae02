"""The pure funnel domain: funnel file model, dialogue steps, stages, scoring, placement.

Standard library + pydantic only (no aiogram, no database).
"""

from funnel.dialogue import SKIPPED, Dialogue, TextCheck, check_text, option_for
from funnel.model import (
    DEFAULT_FUNNEL_PATH,
    EXAMPLE_FUNNELS,
    FILES_DIR,
    QUICK_ANSWERS_SIGNAL,
    REQUIRED_TEXTS,
    Band,
    Funnel,
    FunnelError,
    MenuItem,
    Option,
    Scoring,
    Stage,
    Step,
    Text,
    load_funnel,
    parse_funnel,
    substitute,
)
from funnel.scoring import DIRECT_SOURCE, ScoreResult, score_lead
from funnel.stages import (
    TransitionError,
    allowed_moves,
    can_move,
    check_move,
    is_open,
    place,
    weighted_value,
)

__all__ = [
    "DEFAULT_FUNNEL_PATH",
    "DIRECT_SOURCE",
    "EXAMPLE_FUNNELS",
    "FILES_DIR",
    "QUICK_ANSWERS_SIGNAL",
    "REQUIRED_TEXTS",
    "SKIPPED",
    "Band",
    "Dialogue",
    "Funnel",
    "FunnelError",
    "MenuItem",
    "Option",
    "ScoreResult",
    "Scoring",
    "Stage",
    "Step",
    "Text",
    "TextCheck",
    "TransitionError",
    "allowed_moves",
    "can_move",
    "check_move",
    "check_text",
    "is_open",
    "load_funnel",
    "option_for",
    "parse_funnel",
    "place",
    "score_lead",
    "substitute",
    "weighted_value",
]
