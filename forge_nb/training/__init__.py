"Stage 3, training: LoRA / QLoRA / full SFT, continued pretraining and DPO, in this process, a child process, under torchrun or on any runtime object; memory estimates and adapter export. (Monitor: `forge_nb.training.monitor`; cloud runtimes: `forge_nb.cloud`.)"
from .config import TrainConfig, config_table, plan, demo_records
from .jobs import TrainJob
from .runtimes import LocalRuntime, SubprocessRuntime, TorchrunRuntime, get_runtime, RUNTIMES
from .launch import train, run_spec, DryRun
from .precision import estimate_memory, MemoryEstimate
from .model import merge_adapter
from .dpo import demo_preferences
from ..core.models import load_model, load_tokenizer
