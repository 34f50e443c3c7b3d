"Stage 1, preparation: load any common format, sanitize, transform to chat, validate, filter, split, save."
from .load import load, show, LoadError, iter_batches
from .transform import to_chat, sanitize, SanitizeConfig, to_format, CHAT_MARKERS, reserved_tokens
from .validate import validate, ValidationError, ValidationReport
from .filters import FilterConfig, apply_filters
from .stream import iter_tables
from .preparation import prepare, PrepResult
