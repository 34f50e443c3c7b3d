"Stage 2, mixing: your data blended with general-capability data by category, exact per batch. (Slider editor: `forge_nb.mixing.sliders`.)"
from .config import (MixConfig, get_config, set_config, reset_config, categories, register_category, CATEGORIES,
                     DEFAULT_WEIGHTS, DEFAULT_CUSTOMER_PERCENT)
from .catalog import Catalog, Source, default_catalog, register_source, verified_catalog, catalog_for, HUB_SOURCES
from .samples import sample, cache_dir, CatalogUnavailable
from .decontam import NgramIndex, eval_index, decontaminate
from .mixer import mix, MixResult, Manifest, assign, plan_counts
from .report import MixReport
